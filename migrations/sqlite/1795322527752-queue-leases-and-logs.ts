import type { MigrationInterface, QueryRunner } from 'typeorm';

export class QueueLeasesAndLogs1795322527752 implements MigrationInterface {
  name = 'QueueLeasesAndLogs1795322527752';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"job_logs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"job_id\" integer NOT NULL, \"attempt\" integer NOT NULL, \"level\" varchar(8) NOT NULL DEFAULT ('info'), \"line\" text NOT NULL)");
    await queryRunner.query("CREATE INDEX \"ix_job_logs_job\" ON \"job_logs\" (\"job_id\", \"id\") ");
    await queryRunner.query("DROP INDEX \"ix_jobs_claim\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_resource\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_lease\"");
    await queryRunner.query("DROP INDEX \"uq_jobs_idempotency_key\"");
    await queryRunner.query("CREATE TABLE \"temporary_jobs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"kind\" varchar(64) NOT NULL, \"payload\" text NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('ready'), \"priority\" integer NOT NULL DEFAULT (0), \"run_after\" datetime NOT NULL, \"attempts\" integer NOT NULL DEFAULT (0), \"max_attempts\" integer NOT NULL DEFAULT (5), \"lease_owner\" varchar(128), \"lease_expires_at\" datetime, \"fence\" integer NOT NULL DEFAULT (0), \"idempotency_key\" varchar(191), \"resource_key\" varchar(191), \"parent_id\" integer, \"last_error\" text, \"finished_at\" datetime, \"running_key\" varchar(191), \"started_at\" datetime(3), CONSTRAINT \"fk_jobs_parent\" FOREIGN KEY (\"parent_id\") REFERENCES \"jobs\" (\"id\") ON DELETE SET NULL ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_jobs\"(\"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\") SELECT \"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\" FROM \"jobs\"");
    await queryRunner.query("DROP TABLE \"jobs\"");
    await queryRunner.query("ALTER TABLE \"temporary_jobs\" RENAME TO \"jobs\"");
    await queryRunner.query("CREATE INDEX \"ix_jobs_claim\" ON \"jobs\" (\"state\", \"priority\", \"run_after\", \"id\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_resource\" ON \"jobs\" (\"resource_key\", \"state\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_lease\" ON \"jobs\" (\"state\", \"lease_expires_at\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_jobs_idempotency_key\" ON \"jobs\" (\"idempotency_key\") ");
    await queryRunner.query("DROP INDEX \"ix_jobs_claim\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_lease\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_resource\"");
    await queryRunner.query("DROP INDEX \"uq_jobs_idempotency_key\"");
    await queryRunner.query("CREATE TABLE \"temporary_jobs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"kind\" varchar(64) NOT NULL, \"payload\" text NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('ready'), \"priority\" integer NOT NULL DEFAULT (0), \"run_after\" datetime(3) NOT NULL, \"attempts\" integer NOT NULL DEFAULT (0), \"max_attempts\" integer NOT NULL DEFAULT (5), \"lease_owner\" varchar(128), \"lease_expires_at\" datetime(3), \"fence\" integer NOT NULL DEFAULT (0), \"idempotency_key\" varchar(191), \"resource_key\" varchar(191), \"parent_id\" integer, \"last_error\" text, \"finished_at\" datetime(3), \"running_key\" varchar(191), \"started_at\" datetime(3), CONSTRAINT \"fk_jobs_parent\" FOREIGN KEY (\"parent_id\") REFERENCES \"jobs\" (\"id\") ON DELETE SET NULL ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_jobs\"(\"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\", \"running_key\", \"started_at\") SELECT \"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\", \"running_key\", \"started_at\" FROM \"jobs\"");
    await queryRunner.query("DROP TABLE \"jobs\"");
    await queryRunner.query("ALTER TABLE \"temporary_jobs\" RENAME TO \"jobs\"");
    await queryRunner.query("CREATE INDEX \"ix_jobs_resource\" ON \"jobs\" (\"resource_key\", \"state\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_jobs_idempotency_key\" ON \"jobs\" (\"idempotency_key\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_jobs_running_key\" ON \"jobs\" (\"running_key\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_lease\" ON \"jobs\" (\"state\", \"lease_expires_at\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_claim\" ON \"jobs\" (\"state\", \"priority\", \"run_after\", \"id\") ");
    await queryRunner.query("DROP INDEX \"ix_job_logs_job\"");
    await queryRunner.query("CREATE TABLE \"temporary_job_logs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"job_id\" integer NOT NULL, \"attempt\" integer NOT NULL, \"level\" varchar(8) NOT NULL DEFAULT ('info'), \"line\" text NOT NULL, CONSTRAINT \"fk_job_logs_job\" FOREIGN KEY (\"job_id\") REFERENCES \"jobs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_job_logs\"(\"id\", \"created_at\", \"updated_at\", \"job_id\", \"attempt\", \"level\", \"line\") SELECT \"id\", \"created_at\", \"updated_at\", \"job_id\", \"attempt\", \"level\", \"line\" FROM \"job_logs\"");
    await queryRunner.query("DROP TABLE \"job_logs\"");
    await queryRunner.query("ALTER TABLE \"temporary_job_logs\" RENAME TO \"job_logs\"");
    await queryRunner.query("CREATE INDEX \"ix_job_logs_job\" ON \"job_logs\" (\"job_id\", \"id\") ");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP INDEX \"ix_job_logs_job\"");
    await queryRunner.query("ALTER TABLE \"job_logs\" RENAME TO \"temporary_job_logs\"");
    await queryRunner.query("CREATE TABLE \"job_logs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"job_id\" integer NOT NULL, \"attempt\" integer NOT NULL, \"level\" varchar(8) NOT NULL DEFAULT ('info'), \"line\" text NOT NULL)");
    await queryRunner.query("INSERT INTO \"job_logs\"(\"id\", \"created_at\", \"updated_at\", \"job_id\", \"attempt\", \"level\", \"line\") SELECT \"id\", \"created_at\", \"updated_at\", \"job_id\", \"attempt\", \"level\", \"line\" FROM \"temporary_job_logs\"");
    await queryRunner.query("DROP TABLE \"temporary_job_logs\"");
    await queryRunner.query("CREATE INDEX \"ix_job_logs_job\" ON \"job_logs\" (\"job_id\", \"id\") ");
    await queryRunner.query("DROP INDEX \"ix_jobs_claim\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_lease\"");
    await queryRunner.query("DROP INDEX \"uq_jobs_running_key\"");
    await queryRunner.query("DROP INDEX \"uq_jobs_idempotency_key\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_resource\"");
    await queryRunner.query("ALTER TABLE \"jobs\" RENAME TO \"temporary_jobs\"");
    await queryRunner.query("CREATE TABLE \"jobs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"kind\" varchar(64) NOT NULL, \"payload\" text NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('ready'), \"priority\" integer NOT NULL DEFAULT (0), \"run_after\" datetime NOT NULL, \"attempts\" integer NOT NULL DEFAULT (0), \"max_attempts\" integer NOT NULL DEFAULT (5), \"lease_owner\" varchar(128), \"lease_expires_at\" datetime, \"fence\" integer NOT NULL DEFAULT (0), \"idempotency_key\" varchar(191), \"resource_key\" varchar(191), \"parent_id\" integer, \"last_error\" text, \"finished_at\" datetime, \"running_key\" varchar(191), \"started_at\" datetime(3), CONSTRAINT \"fk_jobs_parent\" FOREIGN KEY (\"parent_id\") REFERENCES \"jobs\" (\"id\") ON DELETE SET NULL ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"jobs\"(\"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\", \"running_key\", \"started_at\") SELECT \"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\", \"running_key\", \"started_at\" FROM \"temporary_jobs\"");
    await queryRunner.query("DROP TABLE \"temporary_jobs\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_jobs_idempotency_key\" ON \"jobs\" (\"idempotency_key\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_resource\" ON \"jobs\" (\"resource_key\", \"state\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_lease\" ON \"jobs\" (\"state\", \"lease_expires_at\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_claim\" ON \"jobs\" (\"state\", \"priority\", \"run_after\", \"id\") ");
    await queryRunner.query("DROP INDEX \"uq_jobs_idempotency_key\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_lease\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_resource\"");
    await queryRunner.query("DROP INDEX \"ix_jobs_claim\"");
    await queryRunner.query("ALTER TABLE \"jobs\" RENAME TO \"temporary_jobs\"");
    await queryRunner.query("CREATE TABLE \"jobs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"kind\" varchar(64) NOT NULL, \"payload\" text NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('ready'), \"priority\" integer NOT NULL DEFAULT (0), \"run_after\" datetime NOT NULL, \"attempts\" integer NOT NULL DEFAULT (0), \"max_attempts\" integer NOT NULL DEFAULT (5), \"lease_owner\" varchar(128), \"lease_expires_at\" datetime, \"fence\" integer NOT NULL DEFAULT (0), \"idempotency_key\" varchar(191), \"resource_key\" varchar(191), \"parent_id\" integer, \"last_error\" text, \"finished_at\" datetime, CONSTRAINT \"fk_jobs_parent\" FOREIGN KEY (\"parent_id\") REFERENCES \"jobs\" (\"id\") ON DELETE SET NULL ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"jobs\"(\"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\") SELECT \"id\", \"created_at\", \"updated_at\", \"kind\", \"payload\", \"state\", \"priority\", \"run_after\", \"attempts\", \"max_attempts\", \"lease_owner\", \"lease_expires_at\", \"fence\", \"idempotency_key\", \"resource_key\", \"parent_id\", \"last_error\", \"finished_at\" FROM \"temporary_jobs\"");
    await queryRunner.query("DROP TABLE \"temporary_jobs\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_jobs_idempotency_key\" ON \"jobs\" (\"idempotency_key\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_lease\" ON \"jobs\" (\"state\", \"lease_expires_at\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_resource\" ON \"jobs\" (\"resource_key\", \"state\") ");
    await queryRunner.query("CREATE INDEX \"ix_jobs_claim\" ON \"jobs\" (\"state\", \"priority\", \"run_after\", \"id\") ");
    await queryRunner.query("DROP INDEX \"ix_job_logs_job\"");
    await queryRunner.query("DROP TABLE \"job_logs\"");
  }
}
