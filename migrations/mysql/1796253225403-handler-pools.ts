import type { MigrationInterface, QueryRunner } from 'typeorm';

export class HandlerPools1796253225403 implements MigrationInterface {
  name = 'HandlerPools1796253225403';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `handler_configs` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `wanted_generation` int NOT NULL DEFAULT '0', `applied_generation` int NOT NULL DEFAULT '0', `pending` tinyint NOT NULL DEFAULT 0, `live_generation` varchar(64) NULL, `last_good_generation` varchar(64) NULL, `applied_at` datetime NULL, `last_error` varchar(1024) NULL, UNIQUE INDEX `uq_handler_configs_server` (`server_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("CREATE TABLE `pool_quarantines` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `install_id` int NOT NULL, `reason` varchar(1024) NOT NULL, INDEX `ix_pool_quarantines_install` (`install_id`), UNIQUE INDEX `uq_pool_quarantines_server_install` (`server_id`, `install_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `servers` ADD `php_fpm_pid_file` varchar(512) NULL");
    await queryRunner.query("ALTER TABLE `servers` ADD `lease_expires_at` datetime NULL");
    await queryRunner.query("ALTER TABLE `servers` ADD `lease_reminded_at` datetime NULL");
    await queryRunner.query("ALTER TABLE `install_servers` ADD `pool_port` int NULL");
    await queryRunner.query("ALTER TABLE `install_servers` ADD `state` varchar(16) NOT NULL DEFAULT 'active'");
    await queryRunner.query("CREATE UNIQUE INDEX `uq_install_servers_server_pool_port` ON `install_servers` (`server_id`, `pool_port`)");
    await queryRunner.query("ALTER TABLE `handler_configs` ADD CONSTRAINT `fk_handler_configs_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `pool_quarantines` ADD CONSTRAINT `fk_pool_quarantines_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `pool_quarantines` ADD CONSTRAINT `fk_pool_quarantines_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `pool_quarantines` DROP FOREIGN KEY `fk_pool_quarantines_install`");
    await queryRunner.query("ALTER TABLE `pool_quarantines` DROP FOREIGN KEY `fk_pool_quarantines_server`");
    await queryRunner.query("ALTER TABLE `handler_configs` DROP FOREIGN KEY `fk_handler_configs_server`");
    await queryRunner.query("DROP INDEX `uq_install_servers_server_pool_port` ON `install_servers`");
    await queryRunner.query("ALTER TABLE `install_servers` DROP COLUMN `state`");
    await queryRunner.query("ALTER TABLE `install_servers` DROP COLUMN `pool_port`");
    await queryRunner.query("ALTER TABLE `servers` DROP COLUMN `lease_reminded_at`");
    await queryRunner.query("ALTER TABLE `servers` DROP COLUMN `lease_expires_at`");
    await queryRunner.query("ALTER TABLE `servers` DROP COLUMN `php_fpm_pid_file`");
    await queryRunner.query("DROP INDEX `uq_pool_quarantines_server_install` ON `pool_quarantines`");
    await queryRunner.query("DROP INDEX `ix_pool_quarantines_install` ON `pool_quarantines`");
    await queryRunner.query("DROP TABLE `pool_quarantines`");
    await queryRunner.query("DROP INDEX `uq_handler_configs_server` ON `handler_configs`");
    await queryRunner.query("DROP TABLE `handler_configs`");
  }
}
