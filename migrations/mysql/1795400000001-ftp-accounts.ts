import type { MigrationInterface, QueryRunner } from 'typeorm';

export class FtpAccounts1795400000001 implements MigrationInterface {
  name = 'FtpAccounts1795400000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      "CREATE TABLE `ftp_accounts` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `userid` varchar(32) NOT NULL, `passwd` varchar(128) NOT NULL, `uid` int NOT NULL, `gid` int NOT NULL, `homedir` varchar(512) NOT NULL, `shell` varchar(64) NOT NULL DEFAULT '/usr/sbin/nologin', `enabled` tinyint NOT NULL DEFAULT 1, UNIQUE INDEX `uq_ftp_accounts_install` (`install_id`), UNIQUE INDEX `uq_ftp_accounts_userid` (`userid`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await queryRunner.query('ALTER TABLE `ftp_accounts` ADD CONSTRAINT `fk_ftp_accounts_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `ftp_accounts` DROP FOREIGN KEY `fk_ftp_accounts_install`');
    await queryRunner.query('DROP INDEX `uq_ftp_accounts_userid` ON `ftp_accounts`');
    await queryRunner.query('DROP INDEX `uq_ftp_accounts_install` ON `ftp_accounts`');
    await queryRunner.query('DROP TABLE `ftp_accounts`');
  }
}
