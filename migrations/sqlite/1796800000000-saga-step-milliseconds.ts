import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Saga steps keep their start and end to the millisecond (a build's steps take tens of them). */
export class SagaStepMilliseconds1796800000000 implements MigrationInterface {
  name = 'SagaStepMilliseconds1796800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP INDEX \"uq_saga_steps_job_step\"");
    await queryRunner.query("CREATE TABLE \"temporary_saga_steps\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"job_id\" integer NOT NULL, \"saga\" varchar(64) NOT NULL, \"step_index\" integer NOT NULL, \"step_name\" varchar(64) NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('pending'), \"attempt\" integer NOT NULL DEFAULT (0), \"started_at\" datetime(3), \"finished_at\" datetime(3), \"duration_ms\" integer, \"error\" text, \"output\" text, CONSTRAINT \"fk_saga_steps_job\" FOREIGN KEY (\"job_id\") REFERENCES \"jobs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_saga_steps\"(\"id\", \"created_at\", \"updated_at\", \"job_id\", \"saga\", \"step_index\", \"step_name\", \"state\", \"attempt\", \"started_at\", \"finished_at\", \"duration_ms\", \"error\", \"output\") SELECT \"id\", \"created_at\", \"updated_at\", \"job_id\", \"saga\", \"step_index\", \"step_name\", \"state\", \"attempt\", \"started_at\", \"finished_at\", \"duration_ms\", \"error\", \"output\" FROM \"saga_steps\"");
    await queryRunner.query("DROP TABLE \"saga_steps\"");
    await queryRunner.query("ALTER TABLE \"temporary_saga_steps\" RENAME TO \"saga_steps\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_saga_steps_job_step\" ON \"saga_steps\" (\"job_id\", \"step_index\") ");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP INDEX \"uq_saga_steps_job_step\"");
    await queryRunner.query("ALTER TABLE \"saga_steps\" RENAME TO \"temporary_saga_steps\"");
    await queryRunner.query("CREATE TABLE \"saga_steps\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"job_id\" integer NOT NULL, \"saga\" varchar(64) NOT NULL, \"step_index\" integer NOT NULL, \"step_name\" varchar(64) NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('pending'), \"attempt\" integer NOT NULL DEFAULT (0), \"started_at\" datetime, \"finished_at\" datetime, \"duration_ms\" integer, \"error\" text, \"output\" text, CONSTRAINT \"fk_saga_steps_job\" FOREIGN KEY (\"job_id\") REFERENCES \"jobs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"saga_steps\"(\"id\", \"created_at\", \"updated_at\", \"job_id\", \"saga\", \"step_index\", \"step_name\", \"state\", \"attempt\", \"started_at\", \"finished_at\", \"duration_ms\", \"error\", \"output\") SELECT \"id\", \"created_at\", \"updated_at\", \"job_id\", \"saga\", \"step_index\", \"step_name\", \"state\", \"attempt\", \"started_at\", \"finished_at\", \"duration_ms\", \"error\", \"output\" FROM \"temporary_saga_steps\"");
    await queryRunner.query("DROP TABLE \"temporary_saga_steps\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_saga_steps_job_step\" ON \"saga_steps\" (\"job_id\", \"step_index\") ");
  }
}
