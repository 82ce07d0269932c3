import type { MigrationInterface, QueryRunner } from 'typeorm';

export class NginxPipeline1795400000003 implements MigrationInterface {
  name = 'NginxPipeline1795400000003';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE "servers" ADD COLUMN "nginx_pid_file" varchar(512)');
    await queryRunner.query(
      'CREATE TABLE "dispatcher_configs" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "created_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "updated_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "server_id" integer NOT NULL, "wanted_generation" integer NOT NULL DEFAULT (0), "applied_generation" integer NOT NULL DEFAULT (0), "pending" boolean NOT NULL DEFAULT (0), "live_generation" varchar(64), "last_good_generation" varchar(64), "applied_at" datetime, "last_error" varchar(1024), CONSTRAINT "fk_dispatcher_configs_server" FOREIGN KEY ("server_id") REFERENCES "servers" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)',
    );
    await queryRunner.query('CREATE UNIQUE INDEX "uq_dispatcher_configs_server" ON "dispatcher_configs" ("server_id") ');
    await queryRunner.query(
      'CREATE TABLE "web_quarantines" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "created_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "updated_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "server_id" integer NOT NULL, "install_id" integer NOT NULL, "reason" varchar(1024) NOT NULL, CONSTRAINT "fk_web_quarantines_server" FOREIGN KEY ("server_id") REFERENCES "servers" ("id") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT "fk_web_quarantines_install" FOREIGN KEY ("install_id") REFERENCES "installs" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)',
    );
    await queryRunner.query('CREATE INDEX "ix_web_quarantines_install" ON "web_quarantines" ("install_id") ');
    await queryRunner.query('CREATE UNIQUE INDEX "uq_web_quarantines_server_install" ON "web_quarantines" ("server_id", "install_id") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_web_quarantines_server_install"');
    await queryRunner.query('DROP INDEX "ix_web_quarantines_install"');
    await queryRunner.query('DROP TABLE "web_quarantines"');
    await queryRunner.query('DROP INDEX "uq_dispatcher_configs_server"');
    await queryRunner.query('DROP TABLE "dispatcher_configs"');
    await queryRunner.query('ALTER TABLE "servers" DROP COLUMN "nginx_pid_file"');
  }
}
