import type { MigrationInterface, QueryRunner } from 'typeorm';

export class FtpAccounts1795400000001 implements MigrationInterface {
  name = 'FtpAccounts1795400000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      'CREATE TABLE "ftp_accounts" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "created_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "updated_at" datetime NOT NULL DEFAULT (datetime(\'now\')), "install_id" integer NOT NULL, "userid" varchar(32) NOT NULL, "passwd" varchar(128) NOT NULL, "uid" integer NOT NULL, "gid" integer NOT NULL, "homedir" varchar(512) NOT NULL, "shell" varchar(64) NOT NULL DEFAULT (\'/usr/sbin/nologin\'), "enabled" boolean NOT NULL DEFAULT (1), CONSTRAINT "fk_ftp_accounts_install" FOREIGN KEY ("install_id") REFERENCES "installs" ("id") ON DELETE CASCADE ON UPDATE NO ACTION)',
    );
    await queryRunner.query('CREATE UNIQUE INDEX "uq_ftp_accounts_install" ON "ftp_accounts" ("install_id") ');
    await queryRunner.query('CREATE UNIQUE INDEX "uq_ftp_accounts_userid" ON "ftp_accounts" ("userid") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_ftp_accounts_userid"');
    await queryRunner.query('DROP INDEX "uq_ftp_accounts_install"');
    await queryRunner.query('DROP TABLE "ftp_accounts"');
  }
}
