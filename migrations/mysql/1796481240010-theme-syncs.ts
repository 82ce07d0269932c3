import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Theme sync: per install and other server, the digest of the master's copied paths last synced there. */
export class ThemeSyncs1796481240010 implements MigrationInterface {
  name = 'ThemeSyncs1796481240010';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `theme_syncs` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `server_id` int NOT NULL, `digest` varchar(64) NULL, `synced_at` datetime NULL, `last_error` varchar(1024) NULL, `failed_at` datetime NULL, INDEX `ix_theme_syncs_server` (`server_id`), UNIQUE INDEX `uq_theme_syncs_install_server` (`install_id`, `server_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `theme_syncs` ADD CONSTRAINT `fk_theme_syncs_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `theme_syncs` ADD CONSTRAINT `fk_theme_syncs_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `theme_syncs` DROP FOREIGN KEY `fk_theme_syncs_server`");
    await queryRunner.query("ALTER TABLE `theme_syncs` DROP FOREIGN KEY `fk_theme_syncs_install`");
    await queryRunner.query("DROP TABLE `theme_syncs`");
  }
}
