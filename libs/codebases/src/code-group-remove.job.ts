import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In, Not, type EntityManager } from 'typeorm';
import { AuditEventRepository, Install, PinRule, Server, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';
import { ServerAccess } from '@app/hosts';
import { defineJobKind, JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { redactRepoUrl } from './repo-url.js';

export interface CodeGroupRemovePayload {
  groupId: number;
}

/** Removes a retired, unused group's checkout from its master and every server it was synced to, then its row. */
export const CODE_GROUP_REMOVE = defineJobKind<CodeGroupRemovePayload>('codegroup.remove', {
  maxAttempts: 5,
  backoff: { baseMs: 5_000, maxMs: 5 * 60_000 },
});

/** Install states that are over: such an install uses no group (it gave its slot back). */
const FINISHED_INSTALLS = ['failed', 'removed'] as const;

export interface CodeGroupUsage {
  /** Installs not failed or removed that point at the group. */
  installs: number;
  /** A few of their ids, for the message. */
  installIds: number[];
  /** Slots taken (install_count). */
  slots: number;
  /** Pin rules sending customers to the group. */
  pinRules: number[];
}

/** Who uses a group: a group is removed only when nothing does. */
export async function codeGroupUsage(m: EntityManager, group: SharedCodeGroup): Promise<CodeGroupUsage> {
  const where = { sharedCodeGroupId: group.id, status: Not(In([...FINISHED_INSTALLS])) };
  const [installs, some, rules] = await Promise.all([
    m.count(Install, { where }),
    m.find(Install, { select: { id: true }, where, order: { id: 'ASC' }, take: 10 }),
    m.find(PinRule, { select: { id: true }, where: { codeGroupId: group.id }, order: { id: 'ASC' } }),
  ]);
  return { installs, installIds: some.map((i) => i.id), slots: group.installCount, pinRules: rules.map((r) => r.id) };
}

/** 409 when anything uses the group; names how many installs do. */
export function refuseIfUsed(group: SharedCodeGroup, usage: CodeGroupUsage): void {
  const users = Math.max(usage.installs, usage.slots);
  if (users > 0) {
    const ids = usage.installIds.length ? ` (install${usage.installIds.length > 1 ? 's' : ''} ${usage.installIds.join(', ')}${usage.installs > usage.installIds.length ? ', ...' : ''})` : '';
    throw new DomainError('CODE_GROUP_IN_USE', `Code group ${group.name} is used by ${users} install(s)${ids}: only a failed or unused group can be removed`, 409, {
      groupId: group.id,
      installs: users,
      installIds: usage.installIds,
    });
  }
  if (usage.pinRules.length > 0) {
    throw new DomainError('CODE_GROUP_IN_USE', `Code group ${group.name} is named by pin rule(s) ${usage.pinRules.join(', ')}: remove or change them first`, 409, {
      groupId: group.id,
      installs: 0,
      pinRules: usage.pinRules,
    });
  }
}

export interface CodeGroupCheckout {
  server: Server;
  path: string;
}

/**
 * Where a group's checkout may lie: its master, and every dispatcher or
 * handler (the servers the clone syncs to, under the same relative path of
 * their shared code root), whatever their state now.
 */
export async function codeGroupCheckouts(m: EntityManager, group: SharedCodeGroup): Promise<CodeGroupCheckout[]> {
  const servers = await m.find(Server, { order: { id: 'ASC' } });
  const name = posix.basename(group.path);
  return servers
    .filter((s) => s.id === group.masterServerId || s.roles.some((r) => r === 'dispatcher' || r === 'handler'))
    .map((server) => ({ server, path: server.id === group.masterServerId ? group.path : posix.join(server.sharedCodeRoot, name) }));
}

@Injectable()
export class CodeGroupRemoveJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly audit: AuditEventRepository,
  ) {}

  @JobHandler(CODE_GROUP_REMOVE)
  async run(payload: CodeGroupRemovePayload, context: JobContext): Promise<void> {
    const m = this.dataSource.manager;
    const group = await m.findOne(SharedCodeGroup, { where: { id: payload.groupId } });
    if (!group) {
      context.log(`code group ${payload.groupId} is already removed`);
      return;
    }
    // Retired with no room by the removal request: no order can have taken a slot since.
    if (group.state !== 'retired') throw new PermanentJobError(`code group ${group.name} is ${group.state}: only a group retired by a removal request is removed`);
    try {
      refuseIfUsed(group, await codeGroupUsage(m, group));
    } catch (error) {
      throw new PermanentJobError(`${(error as Error).message} (it stays retired)`);
    }

    const removed: string[] = [];
    const skipped: string[] = [];
    for (const { server, path } of await codeGroupCheckouts(m, group)) {
      if (server.state === 'down') {
        // Unreachable; nothing will use the directory, and a later group of the same name replaces it when synced there.
        context.error(`${server.hostname} is down: ${path} is left there`);
        skipped.push(server.hostname);
        continue;
      }
      context.log(`removing ${path} on ${server.hostname}`);
      await this.access.executorFor(server).remove(server, path);
      removed.push(server.hostname);
    }

    const detached = await this.dataSource
      .transaction(async (tx) => {
        const fresh = await tx.findOneOrFail(SharedCodeGroup, { where: { id: group.id } });
        refuseIfUsed(fresh, await codeGroupUsage(tx, fresh));
        // Failed and removed installs keep their row for the record, without the group.
        const finished = await tx.find(Install, { select: { id: true }, where: { sharedCodeGroupId: group.id, status: In([...FINISHED_INSTALLS]) } });
        if (finished.length > 0) await tx.update(Install, { id: In(finished.map((i) => i.id)) }, { sharedCodeGroupId: null });
        await tx.delete(SharedCodeGroup, { id: group.id, installCount: 0 });
        return finished.map((i) => i.id);
      })
      .catch((error: unknown) => {
        if (error instanceof DomainError) throw new PermanentJobError(`${error.message} (it stays retired)`);
        throw error;
      });
    await this.audit.record({
      actor: 'codegroup-remove',
      via: 'worker',
      action: 'codegroup.removed',
      targetType: 'code_group',
      targetId: group.id,
      details: { name: group.name, repoUrl: redactRepoUrl(group.repoUrl), removedFrom: removed, skippedDown: skipped, detachedInstalls: detached, jobId: context.jobId },
    });
    context.log(`code group ${group.name} removed (checkout removed on ${removed.join(', ') || 'no server'}${skipped.length ? `; left on ${skipped.join(', ')}, down` : ''})`);
  }
}
