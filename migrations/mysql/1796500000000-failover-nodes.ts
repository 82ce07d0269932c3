import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Floating IP failover: the dispatchers running keepalived, where its files are, and what was applied. */
export class FailoverNodes1796500000000 implements MigrationInterface {
  name = 'FailoverNodes1796500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `failover_nodes` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `interface` varchar(15) NOT NULL, `conf_dir` varchar(512) NOT NULL, `pid_file` varchar(512) NULL, `applied_digest` varchar(64) NULL, `applied_at` datetime NULL, `last_error` varchar(1024) NULL, UNIQUE INDEX `uq_failover_nodes_server` (`server_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `failover_nodes` ADD CONSTRAINT `fk_failover_nodes_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `failover_nodes` DROP FOREIGN KEY `fk_failover_nodes_server`");
    await queryRunner.query("DROP TABLE `failover_nodes`");
  }
}
