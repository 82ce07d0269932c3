import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Server, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';
import { CommandFailedError, ServerAccess } from '@app/hosts';
import { defineJobKind, JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { MANIFEST_FILE, manifestSourcePaths, parseManifest, type CodebaseManifest } from './manifest.js';

export interface CodeGroupClonePayload {
  groupId: number;
  revision: string;
}

/** Clones a new code group on its master and syncs it to the other servers; minutes for a real codebase. */
export const CODE_GROUP_CLONE = defineJobKind<CodeGroupClonePayload>('codegroup.clone', {
  maxAttempts: 3,
  backoff: { baseMs: 5_000, maxMs: 60_000 },
});

const GIT_TIMEOUT_MS = 20 * 60_000;
/** git never asks a question, never runs a transport helper. */
const GIT = ['git', '-c', 'protocol.ext.allow=never', '-c', 'advice.detachedHead=false'];
const GIT_ENV = { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', SSH_ASKPASS: '/bin/false' };

/** Why a clone can never succeed by trying again (bad revision, bad manifest). */
class CloneRefused extends Error {}

@Injectable()
export class CodeGroupCloneJob {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
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
    const master = await this.dataSource.getRepository(Server).findOneOrFail({ where: { id: group.masterServerId } });
    await groups.update({ id: group.id }, { state: 'cloning' });
    try {
      const { revision, manifest } = await this.checkout(group, master, payload.revision, context);
      await this.syncToServers(group, master, context);
      group.revision = revision;
      group.manifest = JSON.parse(JSON.stringify(manifest)) as Record<string, unknown>;
      group.state = 'ready';
      await groups.save(group);
      context.log(`code group ${group.name} is ready at ${revision}`);
    } catch (error) {
      const refused = error instanceof CloneRefused;
      if (refused || context.attempt >= context.maxAttempts) {
        // Nothing half-made stays on the master.
        await this.access
          .executorFor(master)
          .remove(master, group.path)
          .catch((e: Error) => context.error(`could not remove ${group.path} on ${master.hostname}: ${e.message}`));
        await groups.update({ id: group.id }, { state: 'failed' });
        throw new PermanentJobError(`code group ${group.name}: ${(error as Error).message}`);
      }
      throw error;
    }
  }

  /** Clone (or resume a clone) on the master, check out the revision, read and check the manifest. */
  private async checkout(group: SharedCodeGroup, master: Server, wanted: string, context: JobContext): Promise<{ revision: string; manifest: CodebaseManifest }> {
    const executor = this.access.executorFor(master);
    const git = (args: string[]) => executor.mustRun(master, [...GIT, '-C', group.path, ...args], { env: GIT_ENV, timeoutMs: GIT_TIMEOUT_MS });
    if (!(await executor.exists(master, posix.join(group.path, '.git')))) {
      // A directory without .git is what a killed clone left behind.
      if (await executor.exists(master, group.path)) await executor.remove(master, group.path);
      await executor.mkdir(master, posix.dirname(group.path));
      context.log(`cloning ${group.repoUrl} into ${group.path} on ${master.hostname}`);
      await executor.mustRun(master, [...GIT, 'clone', '--quiet', '--no-checkout', '--', group.repoUrl, group.path], { env: GIT_ENV, timeoutMs: GIT_TIMEOUT_MS });
    }
    try {
      await git(['checkout', '--quiet', '--force', '--detach', wanted]);
    } catch (error) {
      if (error instanceof CommandFailedError) throw new CloneRefused(`revision ${wanted} cannot be checked out: ${error.stderr.trim()}`);
      throw error;
    }
    const revision = (await git(['rev-parse', 'HEAD'])).trim();
    context.log(`checked out ${revision}`);
    let plain: unknown = group.manifest;
    if (!plain) {
      const path = posix.join(group.path, MANIFEST_FILE);
      if (!(await executor.exists(master, path))) throw new CloneRefused(`the checkout has no ${MANIFEST_FILE}, and the group was given no manifest`);
      try {
        plain = JSON.parse((await executor.readFile(master, path)).toString());
      } catch (error) {
        throw new CloneRefused(`${MANIFEST_FILE} is not valid JSON: ${(error as Error).message}`);
      }
    }
    let manifest: CodebaseManifest;
    try {
      manifest = await parseManifest(plain);
    } catch (error) {
      if (error instanceof DomainError) throw new CloneRefused(`the manifest is invalid: ${error.message}`);
      throw error;
    }
    const paths = manifestSourcePaths(manifest).map((p) => posix.join(group.path, p));
    const missing = (
      await executor.mustRun(master, ['sh', '-c', 'for p do [ -e "$p" ] || [ -L "$p" ] || printf "%s\\n" "$p"; done', 'check', ...paths])
    )
      .split('\n')
      .filter(Boolean);
    if (missing.length > 0) throw new CloneRefused(`the manifest names paths missing at ${revision}: ${missing.map((p) => posix.relative(group.path, p)).join(', ')}`);
    return { revision, manifest };
  }

  /** The checkout goes to every other active dispatcher and handler, which serve the group's installs. */
  private async syncToServers(group: SharedCodeGroup, master: Server, context: JobContext): Promise<void> {
    const servers = (await this.dataSource.getRepository(Server).find({ where: { state: In(['active']) }, order: { id: 'ASC' } })).filter(
      (s) => s.id !== master.id && s.roles.some((r) => r === 'dispatcher' || r === 'handler'),
    );
    for (const server of servers) {
      context.log(`syncing ${group.name} to ${server.hostname}`);
      await this.access.sync(master, server, group.path);
    }
  }
}
