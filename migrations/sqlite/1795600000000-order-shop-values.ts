import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The order's shop values (store name, admin email, locale) and attributes, kept with the install for its templates. */
export class OrderShopValues1795600000000 implements MigrationInterface {
  name = 'OrderShopValues1795600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "installs" ADD COLUMN "store_name" varchar(128)');
    await queryRunner.query('ALTER TABLE "installs" ADD COLUMN "admin_email" varchar(254)');
    await queryRunner.query('ALTER TABLE "installs" ADD COLUMN "locale" varchar(16)');
    await queryRunner.query('ALTER TABLE "installs" ADD COLUMN "order_attributes" text');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "installs" DROP COLUMN "order_attributes"');
    await queryRunner.query('ALTER TABLE "installs" DROP COLUMN "locale"');
    await queryRunner.query('ALTER TABLE "installs" DROP COLUMN "admin_email"');
    await queryRunner.query('ALTER TABLE "installs" DROP COLUMN "store_name"');
  }
}
