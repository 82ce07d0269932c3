import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every hostname and secure hostname an install claims gets a row in
 * `site_names` under one unique index (before, only hostnames were unique);
 * dispatchers may serve shops on other ports than 80 and 443. SQLite
 * compares text byte for byte (BINARY) already.
 */
export class SiteNamesAndPorts1795500000000 implements MigrationInterface {
  name = 'SiteNamesAndPorts1795500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "servers" ADD COLUMN "http_port" integer');
    await queryRunner.query('ALTER TABLE "servers" ADD COLUMN "https_port" integer');
    await queryRunner.query(
      'CREATE TABLE "site_names" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "created_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "updated_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "install_id" integer NOT NULL, "install_site_id" integer NOT NULL, "name" varchar(253) NOT NULL, CONSTRAINT "fk_site_names_install" FOREIGN KEY ("install_id") REFERENCES "installs" ("id") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT "fk_site_names_site" FOREIGN KEY ("install_site_id") REFERENCES "install_sites" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)',
    );
    await queryRunner.query('CREATE INDEX "ix_site_names_install" ON "site_names" ("install_id") ');
    await queryRunner.query('CREATE INDEX "ix_site_names_site" ON "site_names" ("install_site_id") ');
    await queryRunner.query('CREATE UNIQUE INDEX "uq_site_names_name" ON "site_names" ("name") ');
    await queryRunner.query('INSERT INTO "site_names" ("install_id", "install_site_id", "name") SELECT "install_id", "id", "live_hostname" FROM "install_sites" WHERE "live_hostname" IS NOT NULL');
    await queryRunner.query(
      'INSERT OR IGNORE INTO "site_names" ("install_id", "install_site_id", "name") SELECT "install_id", "id", "secure_hostname" FROM "install_sites" WHERE "live_hostname" IS NOT NULL AND "secure_hostname" IS NOT NULL',
    );
    await queryRunner.query('DROP INDEX "uq_install_sites_live_hostname"');
    await queryRunner.query('ALTER TABLE "install_sites" DROP COLUMN "live_hostname"');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "install_sites" ADD COLUMN "live_hostname" varchar(253)');
    await queryRunner.query('UPDATE "install_sites" SET "live_hostname" = "hostname" WHERE EXISTS (SELECT 1 FROM "site_names" n WHERE n."install_site_id" = "install_sites"."id" AND n."name" = "install_sites"."hostname")');
    await queryRunner.query('CREATE UNIQUE INDEX "uq_install_sites_live_hostname" ON "install_sites" ("live_hostname") ');
    await queryRunner.query('DROP INDEX "uq_site_names_name"');
    await queryRunner.query('DROP INDEX "ix_site_names_site"');
    await queryRunner.query('DROP INDEX "ix_site_names_install"');
    await queryRunner.query('DROP TABLE "site_names"');
    await queryRunner.query('ALTER TABLE "servers" DROP COLUMN "https_port"');
    await queryRunner.query('ALTER TABLE "servers" DROP COLUMN "http_port"');
  }
}
