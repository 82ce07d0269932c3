import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every hostname and secure hostname an install claims gets a row in
 * `site_names` under one unique index (before, only hostnames were unique:
 * a secure hostname could take another shop's hostname); hostname columns
 * compare byte for byte (`utf8mb4_bin`); dispatchers may serve shops on
 * other ports than 80 and 443.
 */
export class SiteNamesAndPorts1795500000000 implements MigrationInterface {
  name = 'SiteNamesAndPorts1795500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `servers` ADD `http_port` int NULL, ADD `https_port` int NULL');
    await queryRunner.query(
      'CREATE TABLE `site_names` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `install_site_id` int NOT NULL, `name` varchar(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, INDEX `ix_site_names_install` (`install_id`), INDEX `ix_site_names_site` (`install_site_id`), UNIQUE INDEX `uq_site_names_name` (`name`), PRIMARY KEY (`id`)) ENGINE=InnoDB',
    );
    await queryRunner.query('ALTER TABLE `site_names` ADD CONSTRAINT `fk_site_names_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
    await queryRunner.query('ALTER TABLE `site_names` ADD CONSTRAINT `fk_site_names_site` FOREIGN KEY (`install_site_id`) REFERENCES `install_sites`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION');
    // What the installs claim today: their live hostnames, and their secure hostnames where no other install has the name.
    await queryRunner.query('INSERT INTO `site_names` (`install_id`, `install_site_id`, `name`) SELECT `install_id`, `id`, `live_hostname` FROM `install_sites` WHERE `live_hostname` IS NOT NULL');
    await queryRunner.query(
      'INSERT IGNORE INTO `site_names` (`install_id`, `install_site_id`, `name`) SELECT `install_id`, `id`, `secure_hostname` FROM `install_sites` WHERE `live_hostname` IS NOT NULL AND `secure_hostname` IS NOT NULL',
    );
    await queryRunner.query('DROP INDEX `uq_install_sites_live_hostname` ON `install_sites`');
    await queryRunner.query('ALTER TABLE `install_sites` DROP COLUMN `live_hostname`');
    await queryRunner.query('ALTER TABLE `install_sites` MODIFY `hostname` varchar(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, MODIFY `secure_hostname` varchar(253) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('ALTER TABLE `install_sites` MODIFY `hostname` varchar(253) NOT NULL, MODIFY `secure_hostname` varchar(253) NULL');
    await queryRunner.query('ALTER TABLE `install_sites` ADD `live_hostname` varchar(253) NULL');
    await queryRunner.query('UPDATE `install_sites` s JOIN `site_names` n ON n.`install_site_id` = s.`id` AND n.`name` = s.`hostname` SET s.`live_hostname` = s.`hostname`');
    await queryRunner.query('CREATE UNIQUE INDEX `uq_install_sites_live_hostname` ON `install_sites` (`live_hostname`)');
    await queryRunner.query('ALTER TABLE `site_names` DROP FOREIGN KEY `fk_site_names_site`');
    await queryRunner.query('ALTER TABLE `site_names` DROP FOREIGN KEY `fk_site_names_install`');
    await queryRunner.query('DROP TABLE `site_names`');
    await queryRunner.query('ALTER TABLE `servers` DROP COLUMN `https_port`, DROP COLUMN `http_port`');
  }
}
