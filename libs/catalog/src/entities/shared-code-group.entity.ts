import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';

export const LICENSES = ['free', 'paid'] as const;
export type License = (typeof LICENSES)[number];
export const CODE_GROUP_STATES = ['pending', 'cloning', 'ready', 'updating', 'failed', 'retired'] as const;
export type CodeGroupState = (typeof CODE_GROUP_STATES)[number];

/** A shared checkout of the shop codebase; many installs symlink into one group. */
@Entity('shared_code_groups')
@Index('ix_shared_code_groups_tier_state', ['tier', 'state'])
export class SharedCodeGroup extends CatalogEntity {
  @Index('uq_shared_code_groups_name', { unique: true })
  @Column({ type: 'varchar', length: 64 })
  name: string;

  @Column({ type: 'varchar', length: 8 })
  tier: License;

  @Column({ type: 'varchar', length: 1024 })
  repoUrl: string;

  /** Commit checked out; null until the clone has finished. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  revision: string | null;

  @Column({ type: 'varchar', length: 512 })
  path: string;

  @ManyToOne(() => Server, { onDelete: 'RESTRICT', nullable: false })
  @JoinColumn({ name: 'master_server_id', foreignKeyConstraintName: 'fk_shared_code_groups_master_server' })
  masterServer?: Relation<Server>;

  @Column({ type: 'int' })
  masterServerId: number;

  /** The seed's `limit`: most installs this group may hold. */
  @Column({ type: 'int' })
  installLimit: number;

  /**
   * Slots taken. Prepare increments it with `... WHERE install_count < install_limit`
   * in its transaction, so concurrent orders can never overfill a group.
   */
  @Column({ type: 'int', default: 0 })
  installCount: number;

  /** Reserved for pinned customers: never chosen by the fewest-installs rule. */
  @Column({ type: 'boolean', default: false })
  pinned: boolean;

  /** Manifest given at creation, for a codebase that does not carry one. */
  @Column({ type: 'simple-json', nullable: true })
  manifest: Record<string, unknown> | null;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  state: CodeGroupState;

  /** Locked: no new install lands on it (orders go to other groups of the tier); its installs keep running. */
  @Column({ type: 'boolean', default: false })
  locked: boolean;
}
