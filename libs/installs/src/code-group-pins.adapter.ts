import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { PinRule } from '@app/catalog';
import { CodeGroupPins, type GroupPin, type PinFor } from '@app/codebases';
import { DomainError, validateDto } from '@app/common';
import { CreatePinRuleDto } from './dto/pin-rule.dto.js';
import { PinRulesService } from './pin-rules.service.js';

/**
 * Priority of the rule of a customer's own codebase: ahead of every rule at
 * the default 100 (a rule at 0 written before it, matching the same order by
 * another criterion, still wins: the lowest priority, then the oldest).
 */
export const OWN_CODEBASE_PRIORITY = 0;

/**
 * The pin rule of a group created for one customer (`POST /v1/code-groups`
 * with `pinFor`), written in the group's transaction. Lives here because pin
 * rules are this library's; @app/codebases sees only its port.
 */
@Injectable()
export class CustomerCodeGroupPins extends CodeGroupPins {
  constructor(private readonly rules: PinRulesService) {
    super();
  }

  async pinIn(m: EntityManager, groupId: number, pinFor: PinFor): Promise<GroupPin> {
    const match = 'email' in pinFor ? { matchEmail: pinFor.email } : { matchAttribute: pinFor.attribute.name, matchValue: pinFor.attribute.value };
    // The pin rules API's own validation, so both ways accept the same customers.
    const dto = await validateDto(CreatePinRuleDto, { ...match, codeGroupId: groupId, priority: OWN_CODEBASE_PRIORITY, note: 'own codebase (pinFor)' });
    // One rule per customer criterion: a second would shadow the first, or be shadowed by it.
    const same = await m.findOne(
      PinRule,
      dto.matchEmail !== undefined ? { where: { matchEmail: dto.matchEmail.toLowerCase() } } : { where: { matchAttribute: dto.matchAttribute!, matchValue: dto.matchValue! } },
    );
    if (same) {
      const who = dto.matchEmail ?? `${dto.matchAttribute}=${dto.matchValue}`;
      throw new DomainError('PIN_RULE_EXISTS', `Pin rule ${same.id} already matches ${who}: remove it first (DELETE /v1/pin-rules/${same.id}); nothing was created`, 409, {
        pinRuleId: same.id,
      });
    }
    const rule = await this.rules.createIn(m, dto);
    return { ruleId: rule.id, priority: rule.priority };
  }
}
