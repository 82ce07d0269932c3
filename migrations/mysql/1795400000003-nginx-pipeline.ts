import type { MigrationInterface, QueryRunner } from 'typeorm';

export class NginxPipeline1795400000003 implements MigrationInterface {
  name = 'NginxPipeline1795400000003';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `servers` ADD `nginx_pid_file` varchar(512) NULL');
    await queryRunner.query(
      "CREATE TABLE `dispatcher_configs` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `wanted_generation` int NOT NULL DEFAULT 0, `applied_generation` int NOT NULL DEFAULT 0, `pending` tinyint NOT NULL DEFAULT 0, `live_generation` varchar(64) NULL, `last_good_generation` varchar(64) NULL, `applied_at` datetime NULL, `last_error` varchar(1024) NULL, UNIQUE INDEX `uq_dispatcher_configs_server` (`server_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query(
      "CREATE TABLE `web_quarantines` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `install_id` int NOT NULL, `reason` varchar(1024) NOT NULL, INDEX `ix_web_quarantines_install` (`install_id`), UNIQUE INDEX `uq_web_quarantines_server_install` (`server_id`, `install_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query('ALTER TABLE `dispatcher_configs` ADD CONSTRAINT `fk_dispatcher_configs_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
    await queryRunner.query('ALTER TABLE `web_quarantines` ADD CONSTRAINT `fk_web_quarantines_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
    await queryRunner.query('ALTER TABLE `web_quarantines` ADD CONSTRAINT `fk_web_quarantines_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `web_quarantines` DROP FOREIGN KEY `fk_web_quarantines_install`');
    await queryRunner.query('ALTER TABLE `web_quarantines` DROP FOREIGN KEY `fk_web_quarantines_server`');
    await queryRunner.query('ALTER TABLE `dispatcher_configs` DROP FOREIGN KEY `fk_dispatcher_configs_server`');
    await queryRunner.query('DROP TABLE `web_quarantines`');
    await queryRunner.query('DROP TABLE `dispatcher_configs`');
    await queryRunner.query('ALTER TABLE `servers` DROP COLUMN `nginx_pid_file`');
  }
}
