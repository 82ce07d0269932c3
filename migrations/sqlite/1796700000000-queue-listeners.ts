import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Queue wake-ups: each worker's UDP address, refreshed while it runs. */
export class QueueListeners1796700000000 implements MigrationInterface {
  name = 'QueueListeners1796700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"queue_listeners\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"owner\" varchar(128) NOT NULL, \"host\" varchar(45) NOT NULL, \"port\" integer NOT NULL, \"seen_at\" datetime NOT NULL)");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_queue_listeners_owner" ON "queue_listeners" ("owner") ');
    await queryRunner.query('CREATE INDEX "ix_queue_listeners_seen" ON "queue_listeners" ("seen_at") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "ix_queue_listeners_seen"');
    await queryRunner.query('DROP INDEX "uq_queue_listeners_owner"');
    await queryRunner.query('DROP TABLE "queue_listeners"');
  }
}
