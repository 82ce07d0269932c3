import { Column, Entity, Index } from 'typeorm';
import { CatalogEntity } from './base.entity.js';

/**
 * A queue worker's wake-up address: an engine process that enqueues a job
 * sends a datagram to each listener seen lately, and the worker claims at
 * once instead of at its next poll. Its row goes when the worker stops; a
 * worker that died leaves one no one refreshes, which senders skip.
 */
@Entity('queue_listeners')
export class QueueListener extends CatalogEntity {
  /** The worker's lease owner (host:pid:nonce), as on the jobs it holds. */
  @Index('uq_queue_listeners_owner', { unique: true })
  @Column({ type: 'varchar', length: 128 })
  owner: string;

  /** The IPv4 or IPv6 address its UDP socket is bound to. */
  @Column({ type: 'varchar', length: 45 })
  host: string;

  @Column({ type: 'int' })
  port: number;

  /** Refreshed every few seconds while the worker runs (the database clock). */
  @Index('ix_queue_listeners_seen')
  @Column({ type: 'datetime' })
  seenAt: Date;
}
