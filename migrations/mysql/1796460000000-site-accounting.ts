import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Site accounting: hits and bytes per install, hostname and day, and how far each dispatcher's access log is read. */
export class SiteAccounting1796460000000 implements MigrationInterface {
  name = 'SiteAccounting1796460000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `site_usage` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `hostname` varchar(253) NOT NULL, `day` varchar(10) NOT NULL, `hits` bigint NOT NULL DEFAULT 0, `bytes` bigint NOT NULL DEFAULT 0, UNIQUE INDEX `uq_site_usage_install_host_day` (`install_id`, `hostname`, `day`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("CREATE TABLE `access_log_cursors` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `path` varchar(512) NOT NULL, `inode` varchar(32) NOT NULL, `offset` bigint NOT NULL DEFAULT 0, UNIQUE INDEX `uq_access_log_cursors_server_path` (`server_id`, `path`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `site_usage` ADD CONSTRAINT `fk_site_usage_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `access_log_cursors` ADD CONSTRAINT `fk_access_log_cursors_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `access_log_cursors` DROP FOREIGN KEY `fk_access_log_cursors_server`");
    await queryRunner.query("ALTER TABLE `site_usage` DROP FOREIGN KEY `fk_site_usage_install`");
    await queryRunner.query("DROP TABLE `access_log_cursors`");
    await queryRunner.query("DROP TABLE `site_usage`");
  }
}
