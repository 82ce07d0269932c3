import type { MigrationInterface, QueryRunner } from 'typeorm';

/** A code group's releases (one directory per revision) and the release each install points at. */
export class CodeReleases1796300000000 implements MigrationInterface {
  name = 'CodeReleases1796300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `code_releases` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `group_id` int NOT NULL, `revision` varchar(64) NOT NULL, `manifest` text NULL, `state` varchar(16) NOT NULL DEFAULT 'ready', UNIQUE INDEX `uq_code_releases_group_revision` (`group_id`, `revision`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `installs` ADD `code_revision` varchar(64) NULL");
    await queryRunner.query("ALTER TABLE `code_releases` ADD CONSTRAINT `fk_code_releases_group` FOREIGN KEY (`group_id`) REFERENCES `shared_code_groups`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `code_releases` DROP FOREIGN KEY `fk_code_releases_group`");
    await queryRunner.query("ALTER TABLE `installs` DROP COLUMN `code_revision`");
    await queryRunner.query("DROP INDEX `uq_code_releases_group_revision` ON `code_releases`");
    await queryRunner.query("DROP TABLE `code_releases`");
  }
}
