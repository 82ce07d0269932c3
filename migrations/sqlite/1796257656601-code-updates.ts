import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The codebase-update module's report tables and a code group's lock.
 * Written by hand from the generated statements: the new tables are made
 * with their foreign keys at once, and `locked` is added in place (a
 * generated rebuild of shared_code_groups renames it, and SQLite then points
 * every foreign key to it at the temporary name, which breaks reverting).
 */
export class CodeUpdates1796257656601 implements MigrationInterface {
  name = 'CodeUpdates1796257656601';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"code_updates\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"kind\" varchar(16) NOT NULL, \"group_id\" integer, \"from_revision\" varchar(64), \"to_revision\" varchar(64), \"snippet_name\" varchar(128), \"snippet_checksum\" varchar(64), \"snippet_sql\" text, \"force\" boolean NOT NULL DEFAULT (0), \"state\" varchar(16) NOT NULL DEFAULT ('planned'), \"canary_install_id\" integer, \"concurrency\" integer NOT NULL DEFAULT (4), \"job_id\" integer, \"requested_by\" varchar(128) NOT NULL, \"started_at\" datetime, \"finished_at\" datetime, \"error\" varchar(1024), CONSTRAINT \"fk_code_updates_group\" FOREIGN KEY (\"group_id\") REFERENCES \"shared_code_groups\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_code_updates_job\" FOREIGN KEY (\"job_id\") REFERENCES \"jobs\" (\"id\") ON DELETE SET NULL ON UPDATE NO ACTION)");
    await queryRunner.query("CREATE INDEX \"ix_code_updates_group\" ON \"code_updates\" (\"group_id\", \"id\") ");
    await queryRunner.query("CREATE TABLE \"code_update_items\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"update_id\" integer NOT NULL, \"install_id\" integer NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('pending'), \"canary\" boolean NOT NULL DEFAULT (0), \"job_id\" integer, \"switched\" boolean NOT NULL DEFAULT (0), \"sql_applied\" integer NOT NULL DEFAULT (0), \"sql_ms\" integer, \"caches_cleared\" boolean NOT NULL DEFAULT (0), \"probe\" varchar(255), \"error\" varchar(2048), \"error_file\" varchar(255), \"error_line\" integer, \"error_statement\" text, \"started_at\" datetime, \"finished_at\" datetime, CONSTRAINT \"fk_code_update_items_update\" FOREIGN KEY (\"update_id\") REFERENCES \"code_updates\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_code_update_items_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("CREATE INDEX \"ix_code_update_items_install\" ON \"code_update_items\" (\"install_id\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_code_update_items_update_install\" ON \"code_update_items\" (\"update_id\", \"install_id\") ");
    await queryRunner.query('ALTER TABLE "shared_code_groups" ADD COLUMN "locked" boolean NOT NULL DEFAULT (0)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "shared_code_groups" DROP COLUMN "locked"');
    await queryRunner.query('DROP INDEX "uq_code_update_items_update_install"');
    await queryRunner.query('DROP INDEX "ix_code_update_items_install"');
    await queryRunner.query('DROP TABLE "code_update_items"');
    await queryRunner.query('DROP INDEX "ix_code_updates_group"');
    await queryRunner.query('DROP TABLE "code_updates"');
  }
}
