import type { MigrationInterface, QueryRunner } from 'typeorm';

export class DbOptionsAndInstallSecrets1795400000000 implements MigrationInterface {
  name = 'DbOptionsAndInstallSecrets1795400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `servers` ADD `db_options_file` varchar(512) NULL');
    await queryRunner.query('ALTER TABLE `installs` ADD `secrets_enc` text NULL');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `installs` DROP COLUMN `secrets_enc`');
    await queryRunner.query('ALTER TABLE `servers` DROP COLUMN `db_options_file`');
  }
}
