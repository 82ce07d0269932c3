import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Theme sync: per install and other server, the digest of the master's copied paths last synced there. */
export class ThemeSyncs1796481240010 implements MigrationInterface {
  name = 'ThemeSyncs1796481240010';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"theme_syncs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"server_id\" integer NOT NULL, \"digest\" varchar(64), \"synced_at\" datetime, \"last_error\" varchar(1024), \"failed_at\" datetime, CONSTRAINT \"fk_theme_syncs_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_theme_syncs_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE INDEX "ix_theme_syncs_server" ON "theme_syncs" ("server_id") ');
    await queryRunner.query('CREATE UNIQUE INDEX "uq_theme_syncs_install_server" ON "theme_syncs" ("install_id", "server_id") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_theme_syncs_install_server"');
    await queryRunner.query('DROP INDEX "ix_theme_syncs_server"');
    await queryRunner.query('DROP TABLE "theme_syncs"');
  }
}
