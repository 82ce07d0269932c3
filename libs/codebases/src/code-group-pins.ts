import type { EntityManager } from 'typeorm';

/** Whose orders a group created for one customer takes: their email, or an order attribute's value. */
export type PinFor = { email: string } | { attribute: { name: string; value: string } };

/** The pin rule written for a group, as the audit records it. */
export interface GroupPin {
  ruleId: number;
  priority: number;
}

/**
 * The port through which `POST /v1/code-groups` with `pinFor` writes the pin
 * rule in the transaction that creates the group. Pin rules belong to
 * @app/installs (prepare applies them), which depends on this library: it
 * provides this token, so codebases never imports installs. Absent (a
 * context without the installs module), `pinFor` is refused.
 */
export abstract class CodeGroupPins {
  /** Writes the rule naming `groupId` for `pinFor` with `m` (same transaction); throws, and so rolls the group back, when the rule is refused. */
  abstract pinIn(m: EntityManager, groupId: number, pinFor: PinFor): Promise<GroupPin>;
}
