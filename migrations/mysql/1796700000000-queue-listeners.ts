import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Queue wake-ups: each worker's UDP address, refreshed while it runs. */
export class QueueListeners1796700000000 implements MigrationInterface {
  name = 'QueueListeners1796700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `queue_listeners` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `owner` varchar(128) NOT NULL, `host` varchar(45) NOT NULL, `port` int NOT NULL, `seen_at` datetime NOT NULL, UNIQUE INDEX `uq_queue_listeners_owner` (`owner`), INDEX `ix_queue_listeners_seen` (`seen_at`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE `queue_listeners`');
  }
}
