import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Site accounting: hits and bytes per install, hostname and day, and how far each dispatcher's access log is read. */
export class SiteAccounting1796460000000 implements MigrationInterface {
  name = 'SiteAccounting1796460000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"site_usage\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"hostname\" varchar(253) NOT NULL, \"day\" varchar(10) NOT NULL, \"hits\" bigint NOT NULL DEFAULT (0), \"bytes\" bigint NOT NULL DEFAULT (0), CONSTRAINT \"fk_site_usage_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_site_usage_install_host_day" ON "site_usage" ("install_id", "hostname", "day") ');
    await queryRunner.query("CREATE TABLE \"access_log_cursors\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"path\" varchar(512) NOT NULL, \"inode\" varchar(32) NOT NULL, \"offset\" bigint NOT NULL DEFAULT (0), CONSTRAINT \"fk_access_log_cursors_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_access_log_cursors_server_path" ON "access_log_cursors" ("server_id", "path") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_access_log_cursors_server_path"');
    await queryRunner.query('DROP TABLE "access_log_cursors"');
    await queryRunner.query('DROP INDEX "uq_site_usage_install_host_day"');
    await queryRunner.query('DROP TABLE "site_usage"');
  }
}
