import type { MigrationInterface, QueryRunner } from 'typeorm';

export class QueueLeasesAndLogs1795322526883 implements MigrationInterface {
  name = 'QueueLeasesAndLogs1795322526883';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `job_logs` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `job_id` int NOT NULL, `attempt` int NOT NULL, `level` varchar(8) NOT NULL DEFAULT 'info', `line` text NOT NULL, INDEX `ix_job_logs_job` (`job_id`, `id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `jobs` ADD `running_key` varchar(191) NULL");
    await queryRunner.query("ALTER TABLE `jobs` ADD `started_at` datetime(3) NULL");
    await queryRunner.query("DROP INDEX `ix_jobs_claim` ON `jobs`");
    await queryRunner.query("DROP INDEX `ix_jobs_lease` ON `jobs`");
    await queryRunner.query("ALTER TABLE `jobs` CHANGE `run_after` `run_after` datetime(3) NOT NULL");
    await queryRunner.query("ALTER TABLE `jobs` CHANGE `lease_expires_at` `lease_expires_at` datetime(3) NULL");
    await queryRunner.query("ALTER TABLE `jobs` CHANGE `finished_at` `finished_at` datetime(3) NULL");
    await queryRunner.query("CREATE UNIQUE INDEX `uq_jobs_running_key` ON `jobs` (`running_key`)");
    await queryRunner.query("CREATE INDEX `ix_jobs_lease` ON `jobs` (`state`, `lease_expires_at`)");
    await queryRunner.query("CREATE INDEX `ix_jobs_claim` ON `jobs` (`state`, `priority`, `run_after`, `id`)");
    await queryRunner.query("ALTER TABLE `job_logs` ADD CONSTRAINT `fk_job_logs_job` FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `job_logs` DROP FOREIGN KEY `fk_job_logs_job`");
    await queryRunner.query("DROP INDEX `ix_jobs_claim` ON `jobs`");
    await queryRunner.query("DROP INDEX `ix_jobs_lease` ON `jobs`");
    await queryRunner.query("DROP INDEX `uq_jobs_running_key` ON `jobs`");
    await queryRunner.query("ALTER TABLE `jobs` CHANGE `finished_at` `finished_at` datetime(0) NULL");
    await queryRunner.query("ALTER TABLE `jobs` CHANGE `lease_expires_at` `lease_expires_at` datetime(0) NULL");
    await queryRunner.query("ALTER TABLE `jobs` CHANGE `run_after` `run_after` datetime(0) NOT NULL");
    await queryRunner.query("CREATE INDEX `ix_jobs_lease` ON `jobs` (`state`, `lease_expires_at`)");
    await queryRunner.query("CREATE INDEX `ix_jobs_claim` ON `jobs` (`state`, `priority`, `run_after`, `id`)");
    await queryRunner.query("ALTER TABLE `jobs` DROP COLUMN `started_at`");
    await queryRunner.query("ALTER TABLE `jobs` DROP COLUMN `running_key`");
    await queryRunner.query("DROP INDEX `ix_job_logs_job` ON `job_logs`");
    await queryRunner.query("DROP TABLE `job_logs`");
  }
}
