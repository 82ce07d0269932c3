import { posix } from 'node:path';
import { Injectable, Optional } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, Job, Server, SharedCodeGroup, type AuditActor } from '@app/catalog';
import { DomainError, NotFoundError, ValidationFailedError } from '@app/common';
import { ServerAccess } from '@app/hosts';
import { QueueService } from '@app/queue';
import { CODE_GROUP_CLONE } from './code-group-clone.job.js';
import { CODE_GROUP_REMOVE, codeGroupCheckouts, codeGroupUsage, refuseIfUsed, type CodeGroupUsage } from './code-group-remove.job.js';
import { CodeGroupPins, type GroupPin, type PinFor } from './code-group-pins.js';
import type { CreateCodeGroupDto, PinForDto, UpdateCodeGroupDto } from './dto/code-group.dto.js';
import { parseManifest } from './manifest.js';
import { checkServerPhp, phpServersOf, type PhpCheckReport } from './php-requirements.js';
import { redactRepoUrl } from './repo-url.js';

/** What removing a group would do (the snippet's --dry-run). */
export interface CodeGroupRemovalPlan {
  group: SharedCodeGroup;
  usage: CodeGroupUsage;
  /** Null when the group can be removed; else why not. */
  refused: string | null;
  checkouts: { server: string; state: string; path: string }[];
}

/** Shared code groups: a checkout of the shop codebase that many installs link into. */
@Injectable()
export class CodeGroupsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
    private readonly access: ServerAccess,
    // Provided by @app/installs, which owns pin rules; absent, `pinFor` is refused.
    @Optional() private readonly pins?: CodeGroupPins,
  ) {}

  list(): Promise<SharedCodeGroup[]> {
    return this.dataSource.getRepository(SharedCodeGroup).find({ order: { id: 'ASC' } });
  }

  async get(id: number): Promise<SharedCodeGroup> {
    const group = await this.dataSource.getRepository(SharedCodeGroup).findOne({ where: { id } });
    if (!group) throw new NotFoundError('Code group', id);
    return group;
  }

  /** A group by id, or by name (the snippets take either). */
  async find(idOrName: number | string): Promise<SharedCodeGroup> {
    if (typeof idOrName === 'number') return this.get(idOrName);
    const group = await this.dataSource.getRepository(SharedCodeGroup).findOne({ where: { name: idOrName } });
    if (!group) throw new NotFoundError('Code group', idOrName);
    return group;
  }

  /**
   * Whether the servers that run the group's PHP (or the one server asked
   * about, which may not hold the group yet) satisfy its manifest's `php`:
   * the same check the clone makes before syncing. Changes nothing.
   */
  async phpCheck(idOrName: number | string, serverId?: number): Promise<PhpCheckReport> {
    const group = await this.find(idOrName);
    if (!group.manifest) {
      throw new DomainError('CODE_GROUP_NO_MANIFEST', `Code group ${group.name} has no manifest yet: it is read from the checkout when the clone runs`, 409, { groupId: group.id });
    }
    const manifest = await parseManifest(group.manifest);
    const all = await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } });
    let servers = phpServersOf(all, group);
    if (serverId !== undefined) {
      const server = all.find((s) => s.id === serverId);
      if (!server) throw new NotFoundError('Server', serverId);
      servers = [server];
    }
    const checks = await Promise.all(servers.map((s) => checkServerPhp(this.access.executorFor(s), s, manifest.php)));
    return { groupId: group.id, group: group.name, required: manifest.php !== undefined, ok: checks.every((c) => c.ok), servers: checks };
  }

  /**
   * Records the group and queues its clone in one transaction: the group
   * exists exactly when its job does. The checkout goes to
   * `<master's shared code root>/<name>`.
   *
   * With `pinFor` (a customer's own codebase): the group is pinned, holds
   * one install unless told otherwise, and the pin rule sending that
   * customer's orders to it is written in the same transaction: a refused
   * rule leaves no group and no job.
   */
  async create(dto: CreateCodeGroupDto, by: AuditActor): Promise<{ group: SharedCodeGroup; jobId: number; pin: GroupPin | null }> {
    const pinFor = dto.pinFor ? this.pinForOf(dto.pinFor, dto.pinned) : null;
    const installLimit = dto.installLimit ?? (pinFor ? 1 : undefined);
    if (installLimit === undefined) throw new ValidationFailedError([{ field: 'installLimit', problems: ['installLimit must be an integer number'] }]);
    const manifest = dto.manifest ? await parseManifest(JSON.parse(JSON.stringify(dto.manifest))) : null;
    const result = await this.dataSource.transaction(async (m) => {
      const master = await m.findOne(Server, { where: { id: dto.masterServerId } });
      if (!master) throw new DomainError('SERVER_NOT_FOUND', `Server ${dto.masterServerId} does not exist`, 400, { masterServerId: dto.masterServerId });
      if (!master.roles.includes('dispatcher')) {
        throw new DomainError('NOT_A_DISPATCHER', `${master.hostname} is not a dispatcher: a code group's master must be one`, 400, { masterServerId: master.id });
      }
      if (await m.findOne(SharedCodeGroup, { where: { name: dto.name } })) {
        throw new DomainError('CODE_GROUP_EXISTS', `A code group named ${dto.name} already exists`, 409, { name: dto.name });
      }
      const group = await m.save(
        m.create(SharedCodeGroup, {
          name: dto.name,
          tier: dto.tier,
          repoUrl: dto.repoUrl,
          revision: null,
          path: posix.join(master.sharedCodeRoot, dto.name),
          masterServerId: master.id,
          installLimit,
          installCount: 0,
          pinned: pinFor !== null || (dto.pinned ?? false),
          manifest: manifest ? (JSON.parse(JSON.stringify(manifest)) as Record<string, unknown>) : null,
          state: 'pending',
        }),
      );
      const { job } = await this.queue.enqueue(
        CODE_GROUP_CLONE,
        { groupId: group.id, revision: dto.revision },
        { manager: m, resourceKey: `codegroup:${group.id}`, idempotencyKey: `codegroup.clone:${group.id}` },
      );
      // Last: a refused rule rolls the group and its job back.
      const pin = pinFor ? await this.pins!.pinIn(m, group.id, pinFor) : null;
      return { group, jobId: job.id, pin };
    });
    this.queue.nudge();
    await this.audit.record({
      ...by,
      action: 'codegroup.create',
      targetType: 'code_group',
      targetId: result.group.id,
      details: {
        name: dto.name,
        repoUrl: redactRepoUrl(dto.repoUrl),
        revision: dto.revision,
        jobId: result.jobId,
        ...(pinFor ? { pinFor, pinRuleId: result.pin!.ruleId } : {}),
      },
    });
    return result;
  }

  /** The customer a group of their own is for: an email or an attribute (exactly one); the group is pinned. */
  private pinForOf(dto: PinForDto, pinned: boolean | undefined): PinFor {
    if (!this.pins) throw new DomainError('PIN_RULES_UNAVAILABLE', 'pinFor needs the installs module (pin rules), which this engine does not load', 501);
    if ((dto.email === undefined) === (dto.attribute === undefined)) {
      throw new ValidationFailedError([{ field: 'pinFor', problems: ['give pinFor.email or pinFor.attribute (one of them)'] }]);
    }
    if (pinned === false) throw new ValidationFailedError([{ field: 'pinned', problems: ['a group made with pinFor is pinned (reserved for its customer): leave pinned out'] }]);
    return dto.email !== undefined ? { email: dto.email.toLowerCase() } : { attribute: { name: dto.attribute!.name, value: dto.attribute!.value } };
  }

  /** An operator's change: lock or unlock, and/or retire (PATCH /v1/code-groups/:id). */
  async update(id: number, dto: UpdateCodeGroupDto, by: AuditActor): Promise<SharedCodeGroup> {
    if (dto.state === undefined && dto.locked === undefined) {
      throw new ValidationFailedError([{ field: 'state', problems: ["give state: 'retired', locked: true|false, or both"] }]);
    }
    if (dto.locked !== undefined) await this.setLocked(id, dto.locked, by);
    if (dto.state === 'retired') await this.retire(id, by);
    return this.get(id);
  }

  /**
   * Locks a group (prepare places no new install in it: orders go to other
   * groups of the tier, a customer pinned to it waits) or unlocks it (it
   * takes orders again, waiting ones first). Its installs keep running.
   */
  async setLocked(idOrName: number | string, locked: boolean, by: AuditActor): Promise<SharedCodeGroup> {
    const group = await this.find(idOrName);
    const changed = await this.dataSource.getRepository(SharedCodeGroup).update({ id: group.id, locked: !locked }, { locked });
    if ((changed.affected ?? 0) > 0) {
      await this.audit.record({
        ...by,
        action: locked ? 'codegroup.lock' : 'codegroup.unlock',
        targetType: 'code_group',
        targetId: group.id,
        details: { name: group.name, installCount: group.installCount },
      });
    }
    return this.get(group.id);
  }

  /**
   * Stops new installs from landing in the group (prepare only picks
   * groups pending, cloning, ready or updating); its installs keep it.
   */
  async retire(id: number, by: AuditActor): Promise<SharedCodeGroup> {
    const group = await this.get(id);
    if (group.state !== 'retired') {
      await this.dataSource.getRepository(SharedCodeGroup).update({ id }, { state: 'retired' });
      await this.audit.record({ ...by, action: 'codegroup.retire', targetType: 'code_group', targetId: id, details: { name: group.name, was: group.state } });
    }
    return this.get(id);
  }

  /** What a removal would do, changing nothing. */
  async removalPlan(id: number): Promise<CodeGroupRemovalPlan> {
    const m = this.dataSource.manager;
    const group = await this.get(id);
    const usage = await codeGroupUsage(m, group);
    let refused: string | null = null;
    try {
      refuseIfUsed(group, usage);
    } catch (error) {
      refused = (error as Error).message;
    }
    const checkouts = (await codeGroupCheckouts(m, group)).map((c) => ({ server: c.server.hostname, state: c.server.state, path: c.path }));
    return { group, usage, refused, checkouts };
  }

  /**
   * Removes a failed or unused group: in one transaction it is checked
   * unused, retired with no room (so no order can take a slot in it, even one
   * that chose it a moment before) and its removal queued (resource key
   * `codegroup:<id>`, so never beside its clone). The job removes the
   * checkouts and then the row, which frees the name. Asked again, the same
   * job is returned.
   */
  async remove(id: number, by: AuditActor): Promise<{ group: SharedCodeGroup; jobId: number }> {
    const result = await this.dataSource.transaction(async (m) => {
      const group = await m.findOne(SharedCodeGroup, { where: { id } });
      if (!group) throw new NotFoundError('Code group', id);
      const key = `codegroup.remove:${id}`;
      const queued = await m.findOne(Job, { where: { idempotencyKey: key } });
      if (queued) return { group, jobId: queued.id, created: false };
      refuseIfUsed(group, await codeGroupUsage(m, group));
      const marked = await m.update(SharedCodeGroup, { id, installCount: 0 }, { state: 'retired', installLimit: 0 });
      if ((marked.affected ?? 0) === 0) {
        // An order took a slot between the check and the update.
        const fresh = await m.findOneByOrFail(SharedCodeGroup, { id });
        refuseIfUsed(fresh, await codeGroupUsage(m, fresh));
        throw new DomainError('CODE_GROUP_IN_USE', `Code group ${group.name} changed while it was being removed: try again`, 409, { groupId: id });
      }
      const { job } = await this.queue.enqueue(CODE_GROUP_REMOVE, { groupId: id }, { manager: m, resourceKey: `codegroup:${id}`, idempotencyKey: key });
      return { group: await m.findOneByOrFail(SharedCodeGroup, { id }), jobId: job.id, created: true };
    });
    if (result.created) {
      this.queue.nudge();
      await this.audit.record({
        ...by,
        action: 'codegroup.remove',
        targetType: 'code_group',
        targetId: id,
        details: { name: result.group.name, repoUrl: redactRepoUrl(result.group.repoUrl), jobId: result.jobId },
      });
    }
    return { group: result.group, jobId: result.jobId };
  }
}
