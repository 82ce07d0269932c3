import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Floating IP failover: the dispatchers running keepalived, where its files are, and what was applied. */
export class FailoverNodes1796500000000 implements MigrationInterface {
  name = 'FailoverNodes1796500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"failover_nodes\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"interface\" varchar(15) NOT NULL, \"conf_dir\" varchar(512) NOT NULL, \"pid_file\" varchar(512), \"applied_digest\" varchar(64), \"applied_at\" datetime, \"last_error\" varchar(1024), CONSTRAINT \"fk_failover_nodes_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_failover_nodes_server" ON "failover_nodes" ("server_id") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_failover_nodes_server"');
    await queryRunner.query('DROP TABLE "failover_nodes"');
  }
}
