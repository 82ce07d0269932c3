import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { CatalogEntity } from './base.entity.js';
import { Server } from './server.entity.js';
import { SharedCodeGroup } from './shared-code-group.entity.js';

/** An order attribute a pin rule may match (the order DTO accepts the same names). */
export const PIN_ATTRIBUTE_NAME = /^[a-z][a-z0-9_]{0,31}$/;
/** The attribute value a pin rule matches. */
export const PIN_ATTRIBUTE_VALUE = /^[\x20-\x7e]{1,128}$/;

/**
 * A pin rule: orders that match (the customer's email, or an order
 * attribute's value) go to a given code group and/or master server. The
 * seed's hard-coded customer `if`s, as data. The lowest priority wins.
 */
@Entity('pin_rules')
@Index('ix_pin_rules_priority', ['priority', 'id'])
export class PinRule extends CatalogEntity {
  /** Lower-case email the rule matches; null when it matches an attribute. */
  @Column({ type: 'varchar', length: 254, nullable: true })
  matchEmail: string | null;

  @Column({ type: 'varchar', length: 32, nullable: true })
  matchAttribute: string | null;

  @Column({ type: 'varchar', length: 128, nullable: true })
  matchValue: string | null;

  @ManyToOne(() => SharedCodeGroup, { onDelete: 'CASCADE', nullable: true })
  @JoinColumn({ name: 'code_group_id', foreignKeyConstraintName: 'fk_pin_rules_code_group' })
  codeGroup?: Relation<SharedCodeGroup>;

  @Column({ type: 'int', nullable: true })
  codeGroupId: number | null;

  @ManyToOne(() => Server, { onDelete: 'CASCADE', nullable: true })
  @JoinColumn({ name: 'server_id', foreignKeyConstraintName: 'fk_pin_rules_server' })
  server?: Relation<Server>;

  @Column({ type: 'int', nullable: true })
  serverId: number | null;

  @Column({ type: 'int', default: 100 })
  priority: number;

  @Column({ type: 'varchar', length: 255, nullable: true })
  note: string | null;
}
