import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { AuditEventRepository, PinRule, Server, SharedCodeGroup, type AuditActor } from '@app/catalog';
import { DomainError, NotFoundError, ValidationFailedError } from '@app/common';
import type { CreatePinRuleDto } from './dto/pin-rule.dto.js';

/** Pin rules: which orders go to which code group and master (data, never code). */
@Injectable()
export class PinRulesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditEventRepository,
  ) {}

  list(): Promise<PinRule[]> {
    return this.dataSource.getRepository(PinRule).find({ order: { priority: 'ASC', id: 'ASC' } });
  }

  async create(dto: CreatePinRuleDto, by: AuditActor): Promise<PinRule> {
    const rule = await this.createIn(this.dataSource.manager, dto);
    await this.audit.record({ ...by, action: 'pin-rule.create', targetType: 'pin_rule', targetId: rule.id, details: { ...dto } });
    return rule;
  }

  /** Checks and writes a rule with `m` (the caller's transaction, if any); the caller audits it. */
  async createIn(m: EntityManager, dto: CreatePinRuleDto): Promise<PinRule> {
    if ((dto.matchEmail === undefined) === (dto.matchAttribute === undefined)) {
      throw new ValidationFailedError([{ field: 'matchEmail', problems: ['give matchEmail, or matchAttribute with matchValue (one of them)'] }]);
    }
    if (dto.codeGroupId === undefined && dto.serverId === undefined) {
      throw new ValidationFailedError([{ field: 'codeGroupId', problems: ['give codeGroupId, serverId or both: what the matching orders are pinned to'] }]);
    }
    if (dto.codeGroupId !== undefined && !(await m.findOne(SharedCodeGroup, { where: { id: dto.codeGroupId } }))) {
      throw new DomainError('CODE_GROUP_NOT_FOUND', `Code group ${dto.codeGroupId} does not exist`, 400, { codeGroupId: dto.codeGroupId });
    }
    if (dto.serverId !== undefined) {
      const server = await m.findOne(Server, { where: { id: dto.serverId } });
      if (!server?.roles.includes('dispatcher')) throw new DomainError('NOT_A_DISPATCHER', `Server ${dto.serverId} is not a dispatcher`, 400, { serverId: dto.serverId });
    }
    return m.save(
      m.create(PinRule, {
        matchEmail: dto.matchEmail?.toLowerCase() ?? null,
        matchAttribute: dto.matchAttribute ?? null,
        matchValue: dto.matchAttribute !== undefined ? (dto.matchValue ?? '') : null,
        codeGroupId: dto.codeGroupId ?? null,
        serverId: dto.serverId ?? null,
        priority: dto.priority ?? 100,
        note: dto.note ?? null,
      }),
    );
  }

  async remove(id: number, by: AuditActor): Promise<void> {
    const result = await this.dataSource.getRepository(PinRule).delete({ id });
    if (!result.affected) throw new NotFoundError('Pin rule', id);
    await this.audit.record({ ...by, action: 'pin-rule.remove', targetType: 'pin_rule', targetId: id });
  }
}

/** The rule an order matches, lowest priority first; null when none does. */
export async function matchPinRule(m: EntityManager, email: string, attributes: Readonly<Record<string, string>>): Promise<PinRule | null> {
  const rules = await m.find(PinRule, { order: { priority: 'ASC', id: 'ASC' } });
  return (
    rules.find((r) => (r.matchEmail !== null && r.matchEmail === email.toLowerCase()) || (r.matchAttribute !== null && attributes[r.matchAttribute] === r.matchValue)) ?? null
  );
}
