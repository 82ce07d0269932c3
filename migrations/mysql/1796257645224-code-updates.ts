import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CodeUpdates1796257645224 implements MigrationInterface {
  name = 'CodeUpdates1796257645224';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `code_updates` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `kind` varchar(16) NOT NULL, `group_id` int NULL, `from_revision` varchar(64) NULL, `to_revision` varchar(64) NULL, `snippet_name` varchar(128) NULL, `snippet_checksum` varchar(64) NULL, `snippet_sql` text NULL, `force` tinyint NOT NULL DEFAULT 0, `state` varchar(16) NOT NULL DEFAULT 'planned', `canary_install_id` int NULL, `concurrency` int NOT NULL DEFAULT '4', `job_id` int NULL, `requested_by` varchar(128) NOT NULL, `started_at` datetime NULL, `finished_at` datetime NULL, `error` varchar(1024) NULL, INDEX `ix_code_updates_group` (`group_id`, `id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("CREATE TABLE `code_update_items` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `update_id` int NOT NULL, `install_id` int NOT NULL, `state` varchar(16) NOT NULL DEFAULT 'pending', `canary` tinyint NOT NULL DEFAULT 0, `job_id` int NULL, `switched` tinyint NOT NULL DEFAULT 0, `sql_applied` int NOT NULL DEFAULT '0', `sql_ms` int NULL, `caches_cleared` tinyint NOT NULL DEFAULT 0, `probe` varchar(255) NULL, `error` varchar(2048) NULL, `error_file` varchar(255) NULL, `error_line` int NULL, `error_statement` text NULL, `started_at` datetime NULL, `finished_at` datetime NULL, INDEX `ix_code_update_items_install` (`install_id`), UNIQUE INDEX `uq_code_update_items_update_install` (`update_id`, `install_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `shared_code_groups` ADD `locked` tinyint NOT NULL DEFAULT 0");
    await queryRunner.query("ALTER TABLE `code_updates` ADD CONSTRAINT `fk_code_updates_group` FOREIGN KEY (`group_id`) REFERENCES `shared_code_groups`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `code_updates` ADD CONSTRAINT `fk_code_updates_job` FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON DELETE SET NULL ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `code_update_items` ADD CONSTRAINT `fk_code_update_items_update` FOREIGN KEY (`update_id`) REFERENCES `code_updates`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `code_update_items` ADD CONSTRAINT `fk_code_update_items_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `code_update_items` DROP FOREIGN KEY `fk_code_update_items_install`");
    await queryRunner.query("ALTER TABLE `code_update_items` DROP FOREIGN KEY `fk_code_update_items_update`");
    await queryRunner.query("ALTER TABLE `code_updates` DROP FOREIGN KEY `fk_code_updates_job`");
    await queryRunner.query("ALTER TABLE `code_updates` DROP FOREIGN KEY `fk_code_updates_group`");
    await queryRunner.query("ALTER TABLE `shared_code_groups` DROP COLUMN `locked`");
    await queryRunner.query("DROP INDEX `uq_code_update_items_update_install` ON `code_update_items`");
    await queryRunner.query("DROP INDEX `ix_code_update_items_install` ON `code_update_items`");
    await queryRunner.query("DROP TABLE `code_update_items`");
    await queryRunner.query("DROP INDEX `ix_code_updates_group` ON `code_updates`");
    await queryRunner.query("DROP TABLE `code_updates`");
  }
}
