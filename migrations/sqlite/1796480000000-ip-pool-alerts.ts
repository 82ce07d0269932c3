import type { MigrationInterface, QueryRunner } from 'typeorm';

/** IP pools below the low-water mark (one row per server and kind while it stays below). */
export class IpPoolAlerts1796480000000 implements MigrationInterface {
  name = 'IpPoolAlerts1796480000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"ip_pool_alerts\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"kind\" varchar(16) NOT NULL, \"free\" integer NOT NULL, \"mailed\" boolean NOT NULL DEFAULT (0), CONSTRAINT \"fk_ip_pool_alerts_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_ip_pool_alerts_server_kind" ON "ip_pool_alerts" ("server_id", "kind") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_ip_pool_alerts_server_kind"');
    await queryRunner.query('DROP TABLE "ip_pool_alerts"');
  }
}
