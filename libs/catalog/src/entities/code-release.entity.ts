import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { SharedCodeGroup } from './shared-code-group.entity.js';

/**
 * One release of a code group: the revision's files in
 * `<group path>/releases/<revision>` on every server of the group (made
 * once on the master from its git repository, then synced), and the
 * manifest read from them. Installs point at one release each
 * (`installs.code_revision`); a rollout switches them one by one.
 * `ready` once it is on every server; `pruned` once removed.
 */
@Entity('code_releases')
@Index('uq_code_releases_group_revision', ['groupId', 'revision'], { unique: true })
export class CodeRelease extends CatalogEntity {
  @ManyToOne(() => SharedCodeGroup, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'group_id', foreignKeyConstraintName: 'fk_code_releases_group' })
  group?: Relation<SharedCodeGroup>;

  @Column({ type: 'int' })
  groupId: number;

  /** The full commit. */
  @Column({ type: 'varchar', length: 64 })
  revision: string;

  @Column({ type: 'simple-json', nullable: true })
  manifest: unknown;

  @Column({ type: 'varchar', length: 16, default: 'ready' })
  state: 'preparing' | 'ready' | 'pruned';
}
