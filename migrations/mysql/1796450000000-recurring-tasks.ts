import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Recurring tasks' schedule state, shared by every engine (the cron role's scheduler). */
export class RecurringTasks1796450000000 implements MigrationInterface {
  name = 'RecurringTasks1796450000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `recurring_tasks` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `name` varchar(64) NOT NULL, `schedule` varchar(128) NOT NULL, `interval_ms` int NOT NULL, `last_tick` datetime NULL, `last_job_id` int NULL, `last_started_at` datetime NULL, `last_finished_at` datetime NULL, `last_success_at` datetime NULL, `last_result` varchar(8) NULL, `last_error` varchar(1024) NULL, `last_duration_ms` int NULL, `runs` int NOT NULL DEFAULT 0, `skipped` int NOT NULL DEFAULT 0, UNIQUE INDEX `uq_recurring_tasks_name` (`name`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP INDEX `uq_recurring_tasks_name` ON `recurring_tasks`");
    await queryRunner.query("DROP TABLE `recurring_tasks`");
  }
}
