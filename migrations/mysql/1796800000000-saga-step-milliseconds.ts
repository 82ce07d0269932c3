import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Saga steps keep their start and end to the millisecond (a build's steps take tens of them). */
export class SagaStepMilliseconds1796800000000 implements MigrationInterface {
  name = 'SagaStepMilliseconds1796800000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `saga_steps` CHANGE `started_at` `started_at` datetime(3) NULL");
    await queryRunner.query("ALTER TABLE `saga_steps` CHANGE `finished_at` `finished_at` datetime(3) NULL");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `saga_steps` CHANGE `finished_at` `finished_at` datetime(0) NULL");
    await queryRunner.query("ALTER TABLE `saga_steps` CHANGE `started_at` `started_at` datetime(0) NULL");
  }
}
