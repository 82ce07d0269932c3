import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Database moves (issue 19): a parent job per move of every install from one database server to another, a report line per install. */
export class DatabaseMoves1796600000000 implements MigrationInterface {
  name = 'DatabaseMoves1796600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"database_moves\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"from_server_id\" integer NOT NULL, \"to_server_id\" integer NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('running'), \"concurrency\" integer NOT NULL DEFAULT (8), \"job_id\" integer, \"requested_by\" varchar(128) NOT NULL, \"started_at\" datetime, \"finished_at\" datetime, \"error\" varchar(1024), CONSTRAINT \"fk_database_moves_from\" FOREIGN KEY (\"from_server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_database_moves_to\" FOREIGN KEY (\"to_server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_database_moves_job\" FOREIGN KEY (\"job_id\") REFERENCES \"jobs\" (\"id\") ON DELETE SET NULL ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE INDEX "ix_database_moves_state" ON "database_moves" ("state") ');
    await queryRunner.query("CREATE TABLE \"database_move_items\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"move_id\" integer NOT NULL, \"install_id\" integer NOT NULL, \"state\" varchar(16) NOT NULL DEFAULT ('pending'), \"job_id\" integer, \"files_rendered\" integer NOT NULL DEFAULT (0), \"caches_cleared\" boolean NOT NULL DEFAULT (0), \"error\" varchar(2048), \"started_at\" datetime, \"finished_at\" datetime, CONSTRAINT \"fk_database_move_items_move\" FOREIGN KEY (\"move_id\") REFERENCES \"database_moves\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_database_move_items_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query('CREATE INDEX "ix_database_move_items_install" ON "database_move_items" ("install_id") ');
    await queryRunner.query('CREATE UNIQUE INDEX "uq_database_move_items_move_install" ON "database_move_items" ("move_id", "install_id") ');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP INDEX "uq_database_move_items_move_install"');
    await queryRunner.query('DROP INDEX "ix_database_move_items_install"');
    await queryRunner.query('DROP TABLE "database_move_items"');
    await queryRunner.query('DROP INDEX "ix_database_moves_state"');
    await queryRunner.query('DROP TABLE "database_moves"');
  }
}
