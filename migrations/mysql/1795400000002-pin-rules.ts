import type { MigrationInterface, QueryRunner } from 'typeorm';

export class PinRules1795400000002 implements MigrationInterface {
  name = 'PinRules1795400000002';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      "CREATE TABLE `pin_rules` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `match_email` varchar(254) NULL, `match_attribute` varchar(32) NULL, `match_value` varchar(128) NULL, `code_group_id` int NULL, `server_id` int NULL, `priority` int NOT NULL DEFAULT 100, `note` varchar(255) NULL, INDEX `ix_pin_rules_priority` (`priority`, `id`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query('ALTER TABLE `pin_rules` ADD CONSTRAINT `fk_pin_rules_code_group` FOREIGN KEY (`code_group_id`) REFERENCES `shared_code_groups`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
    await queryRunner.query('ALTER TABLE `pin_rules` ADD CONSTRAINT `fk_pin_rules_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `pin_rules` DROP FOREIGN KEY `fk_pin_rules_server`');
    await queryRunner.query('ALTER TABLE `pin_rules` DROP FOREIGN KEY `fk_pin_rules_code_group`');
    await queryRunner.query('DROP INDEX `ix_pin_rules_priority` ON `pin_rules`');
    await queryRunner.query('DROP TABLE `pin_rules`');
  }
}
