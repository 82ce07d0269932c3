import type { MigrationInterface, QueryRunner } from 'typeorm';

export class HandlerPools1796253216714 implements MigrationInterface {
  name = 'HandlerPools1796253216714';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("CREATE TABLE \"handler_configs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"wanted_generation\" integer NOT NULL DEFAULT (0), \"applied_generation\" integer NOT NULL DEFAULT (0), \"pending\" boolean NOT NULL DEFAULT (0), \"live_generation\" varchar(64), \"last_good_generation\" varchar(64), \"applied_at\" datetime, \"last_error\" varchar(1024))");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_handler_configs_server\" ON \"handler_configs\" (\"server_id\") ");
    await queryRunner.query("CREATE TABLE \"pool_quarantines\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"install_id\" integer NOT NULL, \"reason\" varchar(1024) NOT NULL)");
    await queryRunner.query("CREATE INDEX \"ix_pool_quarantines_install\" ON \"pool_quarantines\" (\"install_id\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_pool_quarantines_server_install\" ON \"pool_quarantines\" (\"server_id\", \"install_id\") ");
    await queryRunner.query("DROP INDEX \"uq_servers_hostname\"");
    await queryRunner.query("CREATE TABLE \"temporary_servers\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"hostname\" varchar(253) NOT NULL, \"private_ip\" varchar(45), \"roles\" varchar(64) NOT NULL, \"transport\" varchar(8) NOT NULL DEFAULT ('ssh'), \"ssh_host\" varchar(253), \"ssh_port\" integer, \"ssh_user\" varchar(32), \"ssh_key_ref\" varchar(255), \"ssh_host_key\" varchar(255), \"home_root\" varchar(512) NOT NULL, \"shared_code_root\" varchar(512) NOT NULL, \"nginx_conf_dir\" varchar(512) NOT NULL, \"cron_dir\" varchar(512) NOT NULL, \"certs_root\" varchar(512) NOT NULL, \"php_fpm_pool_dir\" varchar(512), \"state\" varchar(16) NOT NULL DEFAULT ('active'), \"capacity\" integer, \"db_options_file\" varchar(512), \"nginx_pid_file\" varchar(512), \"http_port\" integer, \"https_port\" integer, \"php_fpm_pid_file\" varchar(512), \"lease_expires_at\" datetime, \"lease_reminded_at\" datetime)");
    await queryRunner.query("INSERT INTO \"temporary_servers\"(\"id\", \"created_at\", \"updated_at\", \"hostname\", \"private_ip\", \"roles\", \"transport\", \"ssh_host\", \"ssh_port\", \"ssh_user\", \"ssh_key_ref\", \"ssh_host_key\", \"home_root\", \"shared_code_root\", \"nginx_conf_dir\", \"cron_dir\", \"certs_root\", \"php_fpm_pool_dir\", \"state\", \"capacity\", \"db_options_file\", \"nginx_pid_file\", \"http_port\", \"https_port\") SELECT \"id\", \"created_at\", \"updated_at\", \"hostname\", \"private_ip\", \"roles\", \"transport\", \"ssh_host\", \"ssh_port\", \"ssh_user\", \"ssh_key_ref\", \"ssh_host_key\", \"home_root\", \"shared_code_root\", \"nginx_conf_dir\", \"cron_dir\", \"certs_root\", \"php_fpm_pool_dir\", \"state\", \"capacity\", \"db_options_file\", \"nginx_pid_file\", \"http_port\", \"https_port\" FROM \"servers\"");
    await queryRunner.query("DROP TABLE \"servers\"");
    await queryRunner.query("ALTER TABLE \"temporary_servers\" RENAME TO \"servers\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_servers_hostname\" ON \"servers\" (\"hostname\") ");
    await queryRunner.query("DROP INDEX \"uq_install_servers_install_server\"");
    await queryRunner.query("DROP INDEX \"ix_install_servers_server\"");
    await queryRunner.query("CREATE TABLE \"temporary_install_servers\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"server_id\" integer NOT NULL, \"role\" varchar(16) NOT NULL, \"weight\" integer NOT NULL DEFAULT (1), \"pool_port\" integer, \"state\" varchar(16) NOT NULL DEFAULT ('active'), CONSTRAINT \"fk_install_servers_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE RESTRICT ON UPDATE NO ACTION, CONSTRAINT \"fk_install_servers_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_install_servers\"(\"id\", \"created_at\", \"updated_at\", \"install_id\", \"server_id\", \"role\", \"weight\") SELECT \"id\", \"created_at\", \"updated_at\", \"install_id\", \"server_id\", \"role\", \"weight\" FROM \"install_servers\"");
    await queryRunner.query("DROP TABLE \"install_servers\"");
    await queryRunner.query("ALTER TABLE \"temporary_install_servers\" RENAME TO \"install_servers\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_install_servers_install_server\" ON \"install_servers\" (\"install_id\", \"server_id\") ");
    await queryRunner.query("CREATE INDEX \"ix_install_servers_server\" ON \"install_servers\" (\"server_id\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_install_servers_server_pool_port\" ON \"install_servers\" (\"server_id\", \"pool_port\") ");
    await queryRunner.query("DROP INDEX \"uq_handler_configs_server\"");
    await queryRunner.query("CREATE TABLE \"temporary_handler_configs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"wanted_generation\" integer NOT NULL DEFAULT (0), \"applied_generation\" integer NOT NULL DEFAULT (0), \"pending\" boolean NOT NULL DEFAULT (0), \"live_generation\" varchar(64), \"last_good_generation\" varchar(64), \"applied_at\" datetime, \"last_error\" varchar(1024), CONSTRAINT \"fk_handler_configs_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_handler_configs\"(\"id\", \"created_at\", \"updated_at\", \"server_id\", \"wanted_generation\", \"applied_generation\", \"pending\", \"live_generation\", \"last_good_generation\", \"applied_at\", \"last_error\") SELECT \"id\", \"created_at\", \"updated_at\", \"server_id\", \"wanted_generation\", \"applied_generation\", \"pending\", \"live_generation\", \"last_good_generation\", \"applied_at\", \"last_error\" FROM \"handler_configs\"");
    await queryRunner.query("DROP TABLE \"handler_configs\"");
    await queryRunner.query("ALTER TABLE \"temporary_handler_configs\" RENAME TO \"handler_configs\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_handler_configs_server\" ON \"handler_configs\" (\"server_id\") ");
    await queryRunner.query("DROP INDEX \"ix_pool_quarantines_install\"");
    await queryRunner.query("DROP INDEX \"uq_pool_quarantines_server_install\"");
    await queryRunner.query("CREATE TABLE \"temporary_pool_quarantines\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"install_id\" integer NOT NULL, \"reason\" varchar(1024) NOT NULL, CONSTRAINT \"fk_pool_quarantines_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION, CONSTRAINT \"fk_pool_quarantines_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"temporary_pool_quarantines\"(\"id\", \"created_at\", \"updated_at\", \"server_id\", \"install_id\", \"reason\") SELECT \"id\", \"created_at\", \"updated_at\", \"server_id\", \"install_id\", \"reason\" FROM \"pool_quarantines\"");
    await queryRunner.query("DROP TABLE \"pool_quarantines\"");
    await queryRunner.query("ALTER TABLE \"temporary_pool_quarantines\" RENAME TO \"pool_quarantines\"");
    await queryRunner.query("CREATE INDEX \"ix_pool_quarantines_install\" ON \"pool_quarantines\" (\"install_id\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_pool_quarantines_server_install\" ON \"pool_quarantines\" (\"server_id\", \"install_id\") ");
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query("DROP INDEX \"uq_pool_quarantines_server_install\"");
    await queryRunner.query("DROP INDEX \"ix_pool_quarantines_install\"");
    await queryRunner.query("ALTER TABLE \"pool_quarantines\" RENAME TO \"temporary_pool_quarantines\"");
    await queryRunner.query("CREATE TABLE \"pool_quarantines\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"install_id\" integer NOT NULL, \"reason\" varchar(1024) NOT NULL)");
    await queryRunner.query("INSERT INTO \"pool_quarantines\"(\"id\", \"created_at\", \"updated_at\", \"server_id\", \"install_id\", \"reason\") SELECT \"id\", \"created_at\", \"updated_at\", \"server_id\", \"install_id\", \"reason\" FROM \"temporary_pool_quarantines\"");
    await queryRunner.query("DROP TABLE \"temporary_pool_quarantines\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_pool_quarantines_server_install\" ON \"pool_quarantines\" (\"server_id\", \"install_id\") ");
    await queryRunner.query("CREATE INDEX \"ix_pool_quarantines_install\" ON \"pool_quarantines\" (\"install_id\") ");
    await queryRunner.query("DROP INDEX \"uq_handler_configs_server\"");
    await queryRunner.query("ALTER TABLE \"handler_configs\" RENAME TO \"temporary_handler_configs\"");
    await queryRunner.query("CREATE TABLE \"handler_configs\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"server_id\" integer NOT NULL, \"wanted_generation\" integer NOT NULL DEFAULT (0), \"applied_generation\" integer NOT NULL DEFAULT (0), \"pending\" boolean NOT NULL DEFAULT (0), \"live_generation\" varchar(64), \"last_good_generation\" varchar(64), \"applied_at\" datetime, \"last_error\" varchar(1024))");
    await queryRunner.query("INSERT INTO \"handler_configs\"(\"id\", \"created_at\", \"updated_at\", \"server_id\", \"wanted_generation\", \"applied_generation\", \"pending\", \"live_generation\", \"last_good_generation\", \"applied_at\", \"last_error\") SELECT \"id\", \"created_at\", \"updated_at\", \"server_id\", \"wanted_generation\", \"applied_generation\", \"pending\", \"live_generation\", \"last_good_generation\", \"applied_at\", \"last_error\" FROM \"temporary_handler_configs\"");
    await queryRunner.query("DROP TABLE \"temporary_handler_configs\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_handler_configs_server\" ON \"handler_configs\" (\"server_id\") ");
    await queryRunner.query("DROP INDEX \"uq_install_servers_server_pool_port\"");
    await queryRunner.query("DROP INDEX \"ix_install_servers_server\"");
    await queryRunner.query("DROP INDEX \"uq_install_servers_install_server\"");
    await queryRunner.query("ALTER TABLE \"install_servers\" RENAME TO \"temporary_install_servers\"");
    await queryRunner.query("CREATE TABLE \"install_servers\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"install_id\" integer NOT NULL, \"server_id\" integer NOT NULL, \"role\" varchar(16) NOT NULL, \"weight\" integer NOT NULL DEFAULT (1), CONSTRAINT \"fk_install_servers_server\" FOREIGN KEY (\"server_id\") REFERENCES \"servers\" (\"id\") ON DELETE RESTRICT ON UPDATE NO ACTION, CONSTRAINT \"fk_install_servers_install\" FOREIGN KEY (\"install_id\") REFERENCES \"installs\" (\"id\") ON DELETE CASCADE ON UPDATE NO ACTION)");
    await queryRunner.query("INSERT INTO \"install_servers\"(\"id\", \"created_at\", \"updated_at\", \"install_id\", \"server_id\", \"role\", \"weight\") SELECT \"id\", \"created_at\", \"updated_at\", \"install_id\", \"server_id\", \"role\", \"weight\" FROM \"temporary_install_servers\"");
    await queryRunner.query("DROP TABLE \"temporary_install_servers\"");
    await queryRunner.query("CREATE INDEX \"ix_install_servers_server\" ON \"install_servers\" (\"server_id\") ");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_install_servers_install_server\" ON \"install_servers\" (\"install_id\", \"server_id\") ");
    await queryRunner.query("DROP INDEX \"uq_servers_hostname\"");
    await queryRunner.query("ALTER TABLE \"servers\" RENAME TO \"temporary_servers\"");
    await queryRunner.query("CREATE TABLE \"servers\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \"created_at\" datetime NOT NULL DEFAULT (datetime('now')), \"updated_at\" datetime NOT NULL DEFAULT (datetime('now')), \"hostname\" varchar(253) NOT NULL, \"private_ip\" varchar(45), \"roles\" varchar(64) NOT NULL, \"transport\" varchar(8) NOT NULL DEFAULT ('ssh'), \"ssh_host\" varchar(253), \"ssh_port\" integer, \"ssh_user\" varchar(32), \"ssh_key_ref\" varchar(255), \"ssh_host_key\" varchar(255), \"home_root\" varchar(512) NOT NULL, \"shared_code_root\" varchar(512) NOT NULL, \"nginx_conf_dir\" varchar(512) NOT NULL, \"cron_dir\" varchar(512) NOT NULL, \"certs_root\" varchar(512) NOT NULL, \"php_fpm_pool_dir\" varchar(512), \"state\" varchar(16) NOT NULL DEFAULT ('active'), \"capacity\" integer, \"db_options_file\" varchar(512), \"nginx_pid_file\" varchar(512), \"http_port\" integer, \"https_port\" integer)");
    await queryRunner.query("INSERT INTO \"servers\"(\"id\", \"created_at\", \"updated_at\", \"hostname\", \"private_ip\", \"roles\", \"transport\", \"ssh_host\", \"ssh_port\", \"ssh_user\", \"ssh_key_ref\", \"ssh_host_key\", \"home_root\", \"shared_code_root\", \"nginx_conf_dir\", \"cron_dir\", \"certs_root\", \"php_fpm_pool_dir\", \"state\", \"capacity\", \"db_options_file\", \"nginx_pid_file\", \"http_port\", \"https_port\") SELECT \"id\", \"created_at\", \"updated_at\", \"hostname\", \"private_ip\", \"roles\", \"transport\", \"ssh_host\", \"ssh_port\", \"ssh_user\", \"ssh_key_ref\", \"ssh_host_key\", \"home_root\", \"shared_code_root\", \"nginx_conf_dir\", \"cron_dir\", \"certs_root\", \"php_fpm_pool_dir\", \"state\", \"capacity\", \"db_options_file\", \"nginx_pid_file\", \"http_port\", \"https_port\" FROM \"temporary_servers\"");
    await queryRunner.query("DROP TABLE \"temporary_servers\"");
    await queryRunner.query("CREATE UNIQUE INDEX \"uq_servers_hostname\" ON \"servers\" (\"hostname\") ");
    await queryRunner.query("DROP INDEX \"uq_pool_quarantines_server_install\"");
    await queryRunner.query("DROP INDEX \"ix_pool_quarantines_install\"");
    await queryRunner.query("DROP TABLE \"pool_quarantines\"");
    await queryRunner.query("DROP INDEX \"uq_handler_configs_server\"");
    await queryRunner.query("DROP TABLE \"handler_configs\"");
  }
}
