import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A code group's releases (one directory per revision) and the release each
 * install points at. Written by hand (the column is added in place: a
 * generated rebuild of installs would repoint SQLite's foreign keys).
 */
export class CodeReleases1796300000000 implements MigrationInterface {
  name = 'CodeReleases1796300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"code_releases\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"group_id\" integer NOT NULL, \"revision\" varchar(64) NOT NULL, \"manifest\" text, \"state\" varchar(16) NOT NULL DEFAULT ('ready'), CONSTRAINT \"fk_code_releases_group\" FOREIGN KEY (\"group_id\") REFERENCES \"shared_code_groups\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_code_releases_group_revision\" ON \"code_releases\" (\"group_id\", \"revision\") ");
    await queryRunner.query('ALTER TABLE "installs" ADD COLUMN "code_revision" varchar(64)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "installs" DROP COLUMN "code_revision"');
    await queryRunner.query('DROP INDEX "uq_code_releases_group_revision"');
    await queryRunner.query('DROP TABLE "code_releases"');
  }
}
