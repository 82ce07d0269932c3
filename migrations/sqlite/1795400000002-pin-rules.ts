import type { MigrationInterface, QueryRunner } from 'typeorm';

export class PinRules1795400000002 implements MigrationInterface {
  name = 'PinRules1795400000002';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      'CREATE TABLE "pin_rules" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "created_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "updated_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "match_email" varchar(254), "match_attribute" varchar(32), "match_value" varchar(128), "code_group_id" integer, "server_id" integer, "priority" integer NOT NULL DEFAULT (100), "note" varchar(255), CONSTRAINT "fk_pin_rules_code_group" FOREIGN KEY ("code_group_id") REFERENCES "shared_code_groups" ("id") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT "fk_pin_rules_server" FOREIGN KEY ("server_id") REFERENCES "servers" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)',
    );
    await queryRunner.query('CREATE INDEX "ix_pin_rules_priority" ON "pin_rules" ("priority", "id") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "ix_pin_rules_priority"');
    await queryRunner.query('DROP TABLE "pin_rules"');
  }
}
