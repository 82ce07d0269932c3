import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Install } from './install.entity.js';

/**
 * An install's FTP account, in the shape ProFTPD's mod_sql reads:
 * `SQLUserInfo ftp_accounts userid passwd uid gid homedir shell` with
 * `SQLAuthTypes Crypt` (the password is a bcrypt hash, which crypt(3)
 * verifies) and `SQLUserWhereClause "enabled = 1"`.
 */
@Entity('ftp_accounts')
export class FtpAccount extends CatalogEntity {
  @ManyToOne(() => Install, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'install_id', foreignKeyConstraintName: 'fk_ftp_accounts_install' })
  install?: Relation<Install>;

  @Index('uq_ftp_accounts_install', { unique: true })
  @Column({ type: 'int' })
  installId: number;

  @Index('uq_ftp_accounts_userid', { unique: true })
  @Column({ type: 'varchar', length: 32 })
  userid: string;

  /** bcrypt hash (`$2b$...`); the password itself is never stored in clear. */
  @Column({ type: 'varchar', length: 128 })
  passwd: string;

  @Column({ type: 'int' })
  uid: number;

  @Column({ type: 'int' })
  gid: number;

  @Column({ type: 'varchar', length: 512 })
  homedir: string;

  @Column({ type: 'varchar', length: 64, default: '/usr/sbin/nologin' })
  shell: string;

  @Column({ type: 'boolean', default: true })
  enabled: boolean;
}
