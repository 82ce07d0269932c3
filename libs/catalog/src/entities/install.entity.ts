import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';
import { SharedCodeGroup, type License } from './shared-code-group.entity.js';

export const INSTALL_STATUSES = ['preparing', 'building', 'live', 'failed', 'removing', 'removed'] as const;
export type InstallStatus = (typeof INSTALL_STATUSES)[number];

/** One hosted shop. */
@Entity('installs')
@Index('ix_installs_status', ['status'])
export class Install extends CatalogEntity {
  /** The storefront's order reference: the idempotency key of the order hook. */
  @Index('uq_installs_order_ref', { unique: true })
  @Column({ type: 'varchar', length: 128 })
  orderRef: string;

  @Column({ type: 'varchar', length: 254 })
  customerEmail: string;

  @Column({ type: 'varchar', length: 8 })
  license: License;

  /** The order's `shop` values (store name, admin email, locale); templates see them (null: the defaults). */
  @Column({ type: 'varchar', length: 128, nullable: true })
  storeName: string | null;

  @Column({ type: 'varchar', length: 254, nullable: true })
  adminEmail: string | null;

  @Column({ type: 'varchar', length: 16, nullable: true })
  locale: string | null;

  /** The order's attributes (validated names and values), for pin rules and templates (`attr.<name>`). */
  @Column({ type: 'simple-json', nullable: true })
  orderAttributes: Record<string, string> | null;

  /** Home directory name: lower-case letters and digits, unique forever. */
  @Index('uq_installs_fs_name', { unique: true })
  @Column({ type: 'varchar', length: 32 })
  fsName: string;

  @Index('uq_installs_db_name', { unique: true })
  @Column({ type: 'varchar', length: 64 })
  dbName: string;

  @Index('uq_installs_db_user', { unique: true })
  @Column({ type: 'varchar', length: 32 })
  dbUser: string;

  /** AES-GCM ciphertext under SECRETS_KEY; the plain password is never stored. */
  @Column({ type: 'varchar', length: 255 })
  dbPasswordEnc: string;

  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: true })
  @JoinColumn({ name: 'db_server_id', foreignKeyConstraintName: 'fk_installs_db_server' })
  dbServer?: Relation<Server>;

  @Column({ type: 'int', nullable: true })
  dbServerId: number | null;

  @ManyToOne(() => SharedCodeGroup, { onDelete: 'RESTRICT', nullable: true })
  @JoinColumn({ name: 'shared_code_group_id', foreignKeyConstraintName: 'fk_installs_shared_code_group' })
  sharedCodeGroup?: Relation<SharedCodeGroup>;

  /** Null while no group of the tier has room: the build waits for one. */
  @Column({ type: 'int', nullable: true })
  sharedCodeGroupId: number | null;

  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: true })
  @JoinColumn({ name: 'master_server_id', foreignKeyConstraintName: 'fk_installs_master_server' })
  masterServer?: Relation<Server>;

  @Column({ type: 'int', nullable: true })
  masterServerId: number | null;

  /**
   * The release of its code group the install's home points at (its `.code`
   * link): set when its tree is built, moved by a rollout's switch.
   */
  @Column({ type: 'varchar', length: 64, nullable: true })
  codeRevision: string | null;

  /** Served from floating IPs that move between dispatchers on failover. */
  @Column({ type: 'boolean', default: false })
  dynamicIps: boolean;

  /** Structured rewrite rules, validated before they are stored. */
  @Column({ type: 'simple-json', nullable: true })
  customRewrites: unknown[] | null;

  /**
   * The manifest's per-install secrets, generated once at the first build
   * and stable across re-renders: a JSON object encrypted like the password.
   */
  @Column({ type: 'text', nullable: true })
  secretsEnc: string | null;

  @Column({ type: 'varchar', length: 16, default: 'preparing' })
  status: InstallStatus;

  /** When a removal finished (status `removed`); the row is kept with its history. */
  @Column({ type: 'datetime', nullable: true })
  removedAt: Date | null;

  /** Why the install is in its status (waiting for a group, the failing step...). */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  statusReason: string | null;
}
