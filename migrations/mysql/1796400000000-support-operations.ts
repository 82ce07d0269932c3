import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Support operations: a site's certificate and ACME state, an install's removal time, and the backups taken before a removal. */
export class SupportOperations1796400000000 implements MigrationInterface {
  name = 'SupportOperations1796400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `install_sites` ADD `cert_not_after` datetime NULL, ADD `cert_source` varchar(8) NULL, ADD `cert_sha256` varchar(64) NULL, ADD `acme_renew` tinyint NOT NULL DEFAULT 0, ADD `acme_next_attempt_at` datetime NULL, ADD `acme_failures` int NOT NULL DEFAULT 0, ADD `acme_last_attempt_at` datetime NULL, ADD `acme_last_error` varchar(1024) NULL");
    await queryRunner.query("ALTER TABLE `installs` ADD `removed_at` datetime NULL");
    await queryRunner.query("CREATE TABLE `install_backups` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `server_id` int NOT NULL, `path` varchar(512) NOT NULL, `state` varchar(16) NOT NULL DEFAULT 'taking', `expires_at` datetime NOT NULL, `size_bytes` bigint NULL, `contents` text NULL, `error` varchar(1024) NULL, INDEX `ix_install_backups_install` (`install_id`), INDEX `ix_install_backups_state_expires` (`state`, `expires_at`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `install_backups` ADD CONSTRAINT `fk_install_backups_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `install_backups` ADD CONSTRAINT `fk_install_backups_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE RESTRICT ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `install_backups` DROP FOREIGN KEY `fk_install_backups_server`");
    await queryRunner.query("ALTER TABLE `install_backups` DROP FOREIGN KEY `fk_install_backups_install`");
    await queryRunner.query("DROP TABLE `install_backups`");
    await queryRunner.query("ALTER TABLE `installs` DROP COLUMN `removed_at`");
    await queryRunner.query("ALTER TABLE `install_sites` DROP COLUMN `acme_last_error`, DROP COLUMN `acme_last_attempt_at`, DROP COLUMN `acme_failures`, DROP COLUMN `acme_next_attempt_at`, DROP COLUMN `acme_renew`, DROP COLUMN `cert_sha256`, DROP COLUMN `cert_source`, DROP COLUMN `cert_not_after`");
  }
}
