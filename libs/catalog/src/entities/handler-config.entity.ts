import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';

/**
 * The php-fpm pool pipeline's state for one handler (as DispatcherConfig is nginx's). Rebuild requests
 * bump `wantedGeneration`; a rebuild reads it when it starts and records it
 * as `appliedGeneration` once the config is live, so any request made before
 * a rebuild started is included in it. `pending` is true while a rebuild
 * job is queued and not yet started: further requests only bump the
 * generation and ride along with that job.
 */
@Entity('handler_configs')
export class HandlerConfig extends CatalogEntity {
  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: false })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_handler_configs_server' })
  server?: Relation<Server>;

  @Index('uq_handler_configs_server', { unique: true })
  @Column({ type: 'int' })
  serverId: number;

  @Column({ type: 'int', default: 0 })
  wantedGeneration: number;

  @Column({ type: 'int', default: 0 })
  appliedGeneration: number;

  @Column({ type: 'boolean', default: false })
  pending: boolean;

  /** Directory name of the live generation under the server's php-fpm pool dir. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  liveGeneration: string | null;

  /** The generation before it, kept to go back to when a reload fails. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  lastGoodGeneration: string | null;

  @Column({ type: 'datetime', nullable: true })
  appliedAt: Date | null;

  /** Why the last rebuild did not apply (null after a successful one). */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  lastError: string | null;
}
