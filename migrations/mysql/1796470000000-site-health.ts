import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Site health: installs failing their probes now, and the incidents of those that failed N rounds in a row. */
export class SiteHealth1796470000000 implements MigrationInterface {
  name = 'SiteHealth1796470000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `site_health` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `failures` int NOT NULL DEFAULT 0, `last_problem` varchar(1024) NULL, `last_checked_at` datetime NULL, `open_incident_id` int NULL, UNIQUE INDEX `uq_site_health_install` (`install_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("CREATE TABLE `site_incidents` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `install_id` int NOT NULL, `opened_at` datetime NOT NULL, `closed_at` datetime NULL, `problem` varchar(1024) NOT NULL, `last_problem` varchar(1024) NULL, `failed_rounds` int NOT NULL DEFAULT 0, `caches_cleared` tinyint NOT NULL DEFAULT 0, `mailed_opened` tinyint NOT NULL DEFAULT 0, `mailed_closed` tinyint NOT NULL DEFAULT 0, INDEX `ix_site_incidents_install` (`install_id`, `id`), INDEX `ix_site_incidents_open` (`closed_at`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `site_health` ADD CONSTRAINT `fk_site_health_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `site_incidents` ADD CONSTRAINT `fk_site_incidents_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `site_incidents` DROP FOREIGN KEY `fk_site_incidents_install`");
    await queryRunner.query("ALTER TABLE `site_health` DROP FOREIGN KEY `fk_site_health_install`");
    await queryRunner.query("DROP TABLE `site_incidents`");
    await queryRunner.query("DROP TABLE `site_health`");
  }
}
