import type { MigrationInterface, QueryRunner } from 'typeorm';

/** IP pools below the low-water mark (one row per server and kind while it stays below). */
export class IpPoolAlerts1796480000000 implements MigrationInterface {
  name = 'IpPoolAlerts1796480000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `ip_pool_alerts` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `server_id` int NOT NULL, `kind` varchar(16) NOT NULL, `free` int NOT NULL, `mailed` tinyint NOT NULL DEFAULT 0, UNIQUE INDEX `uq_ip_pool_alerts_server_kind` (`server_id`, `kind`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `ip_pool_alerts` ADD CONSTRAINT `fk_ip_pool_alerts_server` FOREIGN KEY (`server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `ip_pool_alerts` DROP FOREIGN KEY `fk_ip_pool_alerts_server`");
    await queryRunner.query("DROP TABLE `ip_pool_alerts`");
  }
}
