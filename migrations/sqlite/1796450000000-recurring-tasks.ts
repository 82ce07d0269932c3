import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Recurring tasks' schedule state, shared by every engine (the cron role's scheduler). */
export class RecurringTasks1796450000000 implements MigrationInterface {
  name = 'RecurringTasks1796450000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"recurring_tasks\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"name\" varchar(64) NOT NULL, \"schedule\" varchar(128) NOT NULL, \"interval_ms\" integer NOT NULL, \"last_tick\" datetime, \"last_job_id\" integer, \"last_started_at\" datetime, \"last_finished_at\" datetime, \"last_success_at\" datetime, \"last_result\" varchar(8), \"last_error\" varchar(1024), \"last_duration_ms\" integer, \"runs\" integer NOT NULL DEFAULT (0), \"skipped\" integer NOT NULL DEFAULT (0))");
    await queryRunner.query('CREATE UNIQUE INDEX "uq_recurring_tasks_name" ON "recurring_tasks" ("name") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_recurring_tasks_name"');
    await queryRunner.query('DROP TABLE "recurring_tasks"');
  }
}
