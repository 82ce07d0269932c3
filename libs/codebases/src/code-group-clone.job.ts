import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Server, SharedCodeGroup } from '@app/catalog';
import { ServerAccess } from '@app/hosts';
import { defineJobKind, JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { CodeReleases, redactedError, ReleaseRefused } from './code-releases.js';

export interface CodeGroupClonePayload {
  groupId: number;
  revision: string;
}

/** Clones a new code group on its master and syncs it to the other servers; minutes for a real codebase. */
export const CODE_GROUP_CLONE = defineJobKind<CodeGroupClonePayload>('codegroup.clone', {
  maxAttempts: 3,
  backoff: { baseMs: 5_000, maxMs: 60_000 },
});

/** States in which a clone (or a retry of it) may run. */
const CLONABLE = ['pending', 'cloning', 'failed'] as const;


@Injectable()
export class CodeGroupCloneJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly releases: CodeReleases,
  ) {}

  @JobHandler(CODE_GROUP_CLONE)
  async run(payload: CodeGroupClonePayload, context: JobContext): Promise<void> {
    const groups = this.dataSource.getRepository(SharedCodeGroup);
    const group = await groups.findOne({ where: { id: payload.groupId } });
    if (!group) throw new PermanentJobError(`code group ${payload.groupId} no longer exists`);
    if (group.state === 'ready') {
      context.log(`code group ${group.name} is already at ${group.revision}`);
      return;
    }
    // A retired group (being removed, or retired before its clone ran) is not cloned.
    const started = await groups.update({ id: group.id, state: In([...CLONABLE]) }, { state: 'cloning' });
    if ((started.affected ?? 0) === 0) {
      context.log(`code group ${group.name} is ${group.state}: nothing to clone`);
      return;
    }
    const access = this.releases.repoAccess(group);
    const master = await this.dataSource.getRepository(Server).findOneOrFail({ where: { id: group.masterServerId } });
    const log = (line: string) => context.log(access.redact(line));
    try {
      // The group's repository on the master, its first release made from it, checked, then synced to the other servers.
      const revision = await this.releases.resolve(group, master, payload.revision, { fetch: false, log });
      await this.releases.make(group, master, revision, log);
      context.log(`checked out ${revision}${revision === payload.revision ? '' : ` (${payload.revision})`}`);
      const manifest = await this.releases.manifestOf(group, master, revision, { given: group.manifest });
      await this.releases.checkPhp(group, master, manifest, context);
      await this.releases.sync(group, master, revision, await this.releases.serversOf(group), log);
      await this.releases.record(group, revision, manifest);
      // simple-json: TypeORM's update type does not know a plain object is a whole column value.
      const stored = JSON.parse(JSON.stringify(manifest)) as never;
      // Ready only if nobody retired it meanwhile; the checkout is recorded either way.
      const ready = await groups.update({ id: group.id, state: 'cloning' }, { revision, manifest: stored, state: 'ready' });
      if ((ready.affected ?? 0) === 0) await groups.update({ id: group.id }, { revision, manifest: stored });
      context.log(`code group ${group.name} is ${(ready.affected ?? 0) === 0 ? 'checked out (and retired)' : 'ready'} at ${revision}`);
    } catch (error) {
      // git's messages and the commands in errors may show the URL: its credentials never reach the output.
      const shown = redactedError(error, access);
      const refused = shown instanceof ReleaseRefused;
      if (refused || context.attempt >= context.maxAttempts) {
        // Nothing half-made stays on the master.
        await this.access
          .executorFor(master)
          .remove(master, group.path)
          .catch((e: Error) => context.error(`could not remove ${group.path} on ${master.hostname}: ${access.redact(e.message)}`));
        await groups.update({ id: group.id, state: 'cloning' }, { state: 'failed' });
        throw new PermanentJobError(`code group ${group.name}: ${(shown as Error).message}`);
      }
      throw shown;
    }
  }
}
