import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The order's shop values (store name, admin email, locale) and attributes, kept with the install for its templates. */
export class OrderShopValues1795600000000 implements MigrationInterface {
  name = 'OrderShopValues1795600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `installs` ADD `store_name` varchar(128) NULL, ADD `admin_email` varchar(254) NULL, ADD `locale` varchar(16) NULL, ADD `order_attributes` text NULL');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `installs` DROP COLUMN `order_attributes`, DROP COLUMN `locale`, DROP COLUMN `admin_email`, DROP COLUMN `store_name`');
  }
}
