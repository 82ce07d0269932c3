import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Database moves (issue 19): a parent job per move of every install from one database server to another, a report line per install. */
export class DatabaseMoves1796600000000 implements MigrationInterface {
  name = 'DatabaseMoves1796600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE `database_moves` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `from_server_id` int NOT NULL, `to_server_id` int NOT NULL, `state` varchar(16) NOT NULL DEFAULT 'running', `concurrency` int NOT NULL DEFAULT 8, `job_id` int NULL, `requested_by` varchar(128) NOT NULL, `started_at` datetime NULL, `finished_at` datetime NULL, `error` varchar(1024) NULL, INDEX `ix_database_moves_state` (`state`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("CREATE TABLE `database_move_items` (`id` int NOT NULL AUTO_INCREMENT, `created_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), `updated_at` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), `move_id` int NOT NULL, `install_id` int NOT NULL, `state` varchar(16) NOT NULL DEFAULT 'pending', `job_id` int NULL, `files_rendered` int NOT NULL DEFAULT 0, `caches_cleared` tinyint NOT NULL DEFAULT 0, `error` varchar(2048) NULL, `started_at` datetime NULL, `finished_at` datetime NULL, INDEX `ix_database_move_items_install` (`install_id`), UNIQUE INDEX `uq_database_move_items_move_install` (`move_id`, `install_id`), PRIMARY KEY (`id`)) ENGINE=InnoDB");
    await queryRunner.query("ALTER TABLE `database_moves` ADD CONSTRAINT `fk_database_moves_from` FOREIGN KEY (`from_server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `database_moves` ADD CONSTRAINT `fk_database_moves_to` FOREIGN KEY (`to_server_id`) REFERENCES `servers`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `database_moves` ADD CONSTRAINT `fk_database_moves_job` FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON DELETE SET NULL ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `database_move_items` ADD CONSTRAINT `fk_database_move_items_move` FOREIGN KEY (`move_id`) REFERENCES `database_moves`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
    await queryRunner.query("ALTER TABLE `database_move_items` ADD CONSTRAINT `fk_database_move_items_install` FOREIGN KEY (`install_id`) REFERENCES `installs`(`id`) ON DELETE CASCADE ON UPDATE NO ACTION");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("ALTER TABLE `database_move_items` DROP FOREIGN KEY `fk_database_move_items_install`");
    await queryRunner.query("ALTER TABLE `database_move_items` DROP FOREIGN KEY `fk_database_move_items_move`");
    await queryRunner.query("ALTER TABLE `database_moves` DROP FOREIGN KEY `fk_database_moves_job`");
    await queryRunner.query("ALTER TABLE `database_moves` DROP FOREIGN KEY `fk_database_moves_to`");
    await queryRunner.query("ALTER TABLE `database_moves` DROP FOREIGN KEY `fk_database_moves_from`");
    await queryRunner.query("DROP TABLE `database_move_items`");
    await queryRunner.query("DROP TABLE `database_moves`");
  }
}
