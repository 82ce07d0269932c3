import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Server, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';
import { CommandFailedError, HostTimeoutError, ServerAccess } from '@app/hosts';
import { defineJobKind, JobHandler, PermanentJobError, type JobContext } from '@app/queue';
import { MANIFEST_FILE, manifestSourcePaths, parseManifest, type CodebaseManifest } from './manifest.js';
import { checkServerPhp, describePhpFailures, phpServersOf } from './php-requirements.js';
import { repoAccess, type RepoAccess } from './repo-url.js';

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
/** States in which a clone (or a retry of it) may run. */
const CLONABLE = ['pending', 'cloning', 'failed'] as const;

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
    // A retired group (being removed, or retired before its clone ran) is not cloned.
    const started = await groups.update({ id: group.id, state: In([...CLONABLE]) }, { state: 'cloning' });
    if ((started.affected ?? 0) === 0) {
      context.log(`code group ${group.name} is ${group.state}: nothing to clone`);
      return;
    }
    const access = repoAccess(group.repoUrl);
    const master = await this.dataSource.getRepository(Server).findOneOrFail({ where: { id: group.masterServerId } });
    try {
      const { revision, manifest } = await this.checkout(group, master, payload.revision, access, context);
      await this.checkPhp(group, master, manifest, context);
      await this.syncToServers(group, master, context);
      // simple-json: TypeORM's update type does not know a plain object is a whole column value.
      const stored = JSON.parse(JSON.stringify(manifest)) as never;
      // Ready only if nobody retired it meanwhile; the checkout is recorded either way.
      const ready = await groups.update({ id: group.id, state: 'cloning' }, { revision, manifest: stored, state: 'ready' });
      if ((ready.affected ?? 0) === 0) await groups.update({ id: group.id }, { revision, manifest: stored });
      context.log(`code group ${group.name} is ${(ready.affected ?? 0) === 0 ? 'checked out (and retired)' : 'ready'} at ${revision}`);
    } catch (error) {
      // git's messages and the commands in errors may show the URL: its credentials never reach the output.
      const shown = redactedError(error, access);
      const refused = shown instanceof CloneRefused;
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

  /** Clone (or resume a clone) on the master, check out the revision, read and check the manifest. */
  private async checkout(group: SharedCodeGroup, master: Server, wanted: string, access: RepoAccess, context: JobContext): Promise<{ revision: string; manifest: CodebaseManifest }> {
    const executor = this.access.executorFor(master);
    const env = { ...GIT_ENV, ...access.env };
    const git = (args: string[]) => executor.mustRun(master, [...GIT, '-C', group.path, ...args], { env, timeoutMs: GIT_TIMEOUT_MS });
    if (!(await executor.exists(master, posix.join(group.path, '.git')))) {
      // A directory without .git is what a killed clone left behind.
      if (await executor.exists(master, group.path)) await executor.remove(master, group.path);
      await executor.mkdir(master, posix.dirname(group.path));
      context.log(`cloning ${access.shown} into ${group.path} on ${master.hostname}`);
      // The URL without credentials: they reach git through its credential helper only, never the checkout's .git/config.
      await executor.mustRun(master, [...GIT, 'clone', '--quiet', '--no-checkout', '--', access.url, group.path], { env, timeoutMs: GIT_TIMEOUT_MS });
    }
    const commit = await this.resolveRevision(master, group.path, wanted);
    try {
      await git(['checkout', '--quiet', '--force', '--detach', commit]);
    } catch (error) {
      if (error instanceof CommandFailedError) throw new CloneRefused(`revision ${wanted} (${commit}) cannot be checked out: ${error.stderr.trim()}`);
      throw error;
    }
    const revision = (await git(['rev-parse', 'HEAD'])).trim();
    context.log(`checked out ${revision}${revision === wanted ? '' : ` (${wanted})`}`);
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

  /**
   * The commit a revision names in a fresh clone: a tag, a branch (after
   * `clone --no-checkout` only the default branch is local, every other one is
   * `origin/<name>`), or a commit, in git's own order (tags before branches).
   */
  private async resolveRevision(master: Server, path: string, wanted: string): Promise<string> {
    const executor = this.access.executorFor(master);
    for (const candidate of [`refs/tags/${wanted}`, `refs/remotes/origin/${wanted}`, wanted]) {
      const result = await executor.run(master, [...GIT, '-C', path, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${candidate}^{commit}`], { env: GIT_ENV });
      if (result.exitCode === 0) return result.stdout.trim();
    }
    throw new CloneRefused(`revision ${wanted} cannot be checked out: no tag, branch or commit of that name in the repository`);
  }

  /**
   * Before anything is synced: every server that will run the group's PHP
   * satisfies the manifest's `php` (version, extensions, settings a pool
   * cannot set), else the group is refused with each server's problems. A
   * server that cannot be asked is a failure to retry, not a refusal.
   */
  private async checkPhp(group: SharedCodeGroup, master: Server, manifest: CodebaseManifest, context: JobContext): Promise<void> {
    if (!manifest.php) return;
    const servers = phpServersOf(await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } }), { masterServerId: master.id });
    const checks = await Promise.all(servers.map((s) => checkServerPhp(this.access.executorFor(s), s, manifest.php)));
    for (const c of checks) {
      const what = c.binary ? `${c.binary}${c.version ? ` (PHP ${c.version})` : ''}` : 'no PHP';
      if (c.error) context.error(`PHP check: ${c.hostname} could not be asked: ${c.error}`);
      else context.log(`PHP check: ${c.hostname}: ${what}: ${c.ok ? 'meets the manifest' : c.problems.join('; ')}`);
      for (const note of c.notes) context.log(`  ${c.hostname}: ${note}`);
    }
    if (checks.some((c) => !c.ok && !c.error)) throw new CloneRefused(`PHP requirements not met: ${describePhpFailures(checks)}`);
    if (checks.some((c) => c.error)) throw new Error(`PHP requirements could not be checked: ${describePhpFailures(checks)}`);
  }

  /** The checkout goes to every other active dispatcher and handler, which serve the group's installs. */
  private async syncToServers(group: SharedCodeGroup, master: Server, context: JobContext): Promise<void> {
    const servers = phpServersOf(await this.dataSource.getRepository(Server).find({ where: { state: In(['active']) }, order: { id: 'ASC' } }), { masterServerId: master.id }).filter(
      (s) => s.id !== master.id,
    );
    for (const server of servers) {
      context.log(`syncing ${group.name} to ${server.hostname}`);
      await this.access.sync(master, server, group.path);
    }
  }
}

/**
 * The error as it may be shown: the repository's credentials removed from
 * its message (and, for a failed command, from the command and its stderr),
 * its kind kept so retries and refusals behave the same.
 */
function redactedError(error: unknown, access: RepoAccess): unknown {
  if (error instanceof CommandFailedError) return new CommandFailedError(error.server, error.argv.map(access.redact), error.exitCode, access.redact(error.stderr));
  if (error instanceof HostTimeoutError) return new HostTimeoutError(error.server, error.argv.map(access.redact), error.timeoutMs);
  if (error instanceof Error) {
    error.message = access.redact(error.message);
    if (error.stack) error.stack = access.redact(error.stack);
  }
  return error;
}
