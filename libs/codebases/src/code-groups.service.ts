import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, Server, SharedCodeGroup, type AuditActor } from '@app/catalog';
import { DomainError, NotFoundError } from '@app/common';
import { QueueService } from '@app/queue';
import { CODE_GROUP_CLONE } from './code-group-clone.job.js';
import type { CreateCodeGroupDto } from './dto/code-group.dto.js';
import { parseManifest } from './manifest.js';

/** Shared code groups: a checkout of the shop codebase that many installs link into. */
@Injectable()
export class CodeGroupsService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly queue: QueueService,
    private readonly audit: AuditEventRepository,
  ) {}

  list(): Promise<SharedCodeGroup[]> {
    return this.dataSource.getRepository(SharedCodeGroup).find({ order: { id: 'ASC' } });
  }

  async get(id: number): Promise<SharedCodeGroup> {
    const group = await this.dataSource.getRepository(SharedCodeGroup).findOne({ where: { id } });
    if (!group) throw new NotFoundError('Code group', id);
    return group;
  }

  /**
   * Records the group and queues its clone in one transaction: the group
   * exists exactly when its job does. The checkout goes to
   * `<master's shared code root>/<name>`.
   */
  async create(dto: CreateCodeGroupDto, by: AuditActor): Promise<{ group: SharedCodeGroup; jobId: number }> {
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
          installLimit: dto.installLimit,
          installCount: 0,
          pinned: dto.pinned ?? false,
          manifest: manifest ? (JSON.parse(JSON.stringify(manifest)) as Record<string, unknown>) : null,
          state: 'pending',
        }),
      );
      const { job } = await this.queue.enqueue(
        CODE_GROUP_CLONE,
        { groupId: group.id, revision: dto.revision },
        { manager: m, resourceKey: `codegroup:${group.id}`, idempotencyKey: `codegroup.clone:${group.id}` },
      );
      return { group, jobId: job.id };
    });
    await this.audit.record({ ...by, action: 'codegroup.create', targetType: 'code_group', targetId: result.group.id, details: { name: dto.name, revision: dto.revision, jobId: result.jobId } });
    return result;
  }
}
