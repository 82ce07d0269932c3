import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Support operations: a site's certificate and ACME state, an install's
 * removal time, and the backups taken before a removal. Written by hand
 * (columns added in place: a generated rebuild of installs would repoint
 * SQLite's foreign keys).
 */
export class SupportOperations1796400000000 implements MigrationInterface {
  name = 'SupportOperations1796400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const column of [
      '"cert_not_after" datetime',
      '"cert_source" varchar(8)',
      '"cert_sha256" varchar(64)',
      '"acme_renew" boolean NOT NULL DEFAULT (0)',
      '"acme_next_attempt_at" datetime',
      '"acme_failures" integer NOT NULL DEFAULT (0)',
      '"acme_last_attempt_at" datetime',
      '"acme_last_error" varchar(1024)',
    ]) {
      await queryRunner.query(`ALTER TABLE "install_sites" ADD COLUMN ${column}`);
    }
    await queryRunner.query('ALTER TABLE "installs" ADD COLUMN "removed_at" datetime');
    await queryRunner.query("CREATE TABLE \"install_backups\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"server_id\" integer NOT NULL, \"path\" varchar(512) NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('taking'), \"expires_at\" datetime NOT NULL, \"size_bytes\" bigint, \"contents\" text, \"error\" varchar(1024), CONSTRAINT \"fk_install_backups_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_install_backups_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE RESTRICT ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE INDEX "ix_install_backups_install" ON "install_backups" ("install_id") ');
    await queryRunner.query('CREATE INDEX "ix_install_backups_state_expires" ON "install_backups" ("state", "expires_at") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "ix_install_backups_state_expires"');
    await queryRunner.query('DROP INDEX "ix_install_backups_install"');
    await queryRunner.query('DROP TABLE "install_backups"');
    await queryRunner.query('ALTER TABLE "installs" DROP COLUMN "removed_at"');
    for (const column of ['acme_last_error', 'acme_last_attempt_at', 'acme_failures', 'acme_next_attempt_at', 'acme_renew', 'cert_sha256', 'cert_source', 'cert_not_after']) {
      await queryRunner.query(`ALTER TABLE "install_sites" DROP COLUMN "${column}"`);
    }
  }
}
