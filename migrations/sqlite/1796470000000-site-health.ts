import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Site health: installs failing their probes now, and the incidents of those that failed N rounds in a row. */
export class SiteHealth1796470000000 implements MigrationInterface {
  name = 'SiteHealth1796470000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"site_health\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"failures\" integer NOT NULL DEFAULT (0), \"last_problem\" varchar(1024), \"last_checked_at\" datetime, \"open_incident_id\" integer, CONSTRAINT \"fk_site_health_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_site_health_install" ON "site_health" ("install_id") ');
    await queryRunner.query("CREATE TABLE \"site_incidents\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"opened_at\" datetime NOT NULL, \"closed_at\" datetime, \"problem\" varchar(1024) NOT NULL, \"last_problem\" varchar(1024), \"failed_rounds\" integer NOT NULL DEFAULT (0), \"caches_cleared\" boolean NOT NULL DEFAULT (0), \"mailed_opened\" boolean NOT NULL DEFAULT (0), \"mailed_closed\" boolean NOT NULL DEFAULT (0), CONSTRAINT \"fk_site_incidents_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE INDEX "ix_site_incidents_install" ON "site_incidents" ("install_id", "id") ');
    await queryRunner.query('CREATE INDEX "ix_site_incidents_open" ON "site_incidents" ("closed_at") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "ix_site_incidents_open"');
    await queryRunner.query('DROP INDEX "ix_site_incidents_install"');
    await queryRunner.query('DROP TABLE "site_incidents"');
    await queryRunner.query('DROP INDEX "uq_site_health_install"');
    await queryRunner.query('DROP TABLE "site_health"');
  }
}
