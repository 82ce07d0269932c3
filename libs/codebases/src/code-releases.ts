import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { CodeRelease, InstallServer, Install, Server, SharedCodeGroup } from '@app/catalog';
import { DomainError } from '@app/common';
import { CommandFailedError, HostTimeoutError, ServerAccess } from '@app/hosts';
import { checkCommit, releaseDirOn, RELEASES_DIR, repoDirOn, groupDirOn } from './code-layout.js';
import { MANIFEST_FILE, manifestSourcePaths, parseManifest, type CodebaseManifest } from './manifest.js';
import { checkServerPhp, describePhpFailures, phpServersOf } from './php-requirements.js';
import { repoAccess, type RepoAccess } from './repo-url.js';

const GIT_TIMEOUT_MS = 20 * 60_000;
/** git never asks a question, never runs a transport helper. */
export const GIT = ['git', '-c', 'protocol.ext.allow=never', '-c', 'advice.detachedHead=false'];
export const GIT_ENV = { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false', SSH_ASKPASS: '/bin/false' };

/** Why a release can never be made by trying again (a revision the repository lacks, a bad manifest). */
export class ReleaseRefused extends Error {
  override name = 'ReleaseRefused';
}

type Log = (line: string) => void;

/**
 * A code group's releases (see code-layout.ts): its git repository on the
 * master (cloned once, fetched for each new revision), a release directory
 * per revision made from it (`git archive`, into a temporary directory
 * renamed into place: a release exists whole or not at all), its manifest
 * read and checked, and the release synced to the group's other servers
 * (the relay sync). Every step is idempotent: a killed job runs it again.
 */
@Injectable()
export class CodeReleases {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
  ) {}

  /** The repository's access (its credentials kept for git's credential helper, redacted from what is shown). */
  repoAccess(group: SharedCodeGroup): RepoAccess {
    return repoAccess(group.repoUrl);
  }

  /**
   * The group's repository on the master, cloned if missing (into a
   * temporary name, renamed: a killed clone leaves nothing that looks
   * whole) or fetched when `fetch` is set, and the commit `wanted` names.
   */
  async resolve(group: SharedCodeGroup, master: Server, wanted: string, options: { fetch: boolean; log: Log }): Promise<string> {
    const access = this.repoAccess(group);
    const executor = this.access.executorFor(master);
    const repo = repoDirOn(master, group);
    const env = { ...GIT_ENV, ...access.env };
    if (!(await executor.exists(master, posix.join(repo, 'HEAD')))) {
      const tmp = `${repo}.tmp`;
      await executor.remove(master, tmp);
      await executor.mkdir(master, groupDirOn(master, group));
      options.log(`cloning ${access.shown} into ${repo} on ${master.hostname}`);
      // The URL without credentials: they reach git through its credential helper only, never the repository's config.
      await executor.mustRun(master, [...GIT, 'clone', '--quiet', '--bare', '--', access.url, tmp], { env, timeoutMs: GIT_TIMEOUT_MS });
      await executor.mustRun(master, ['mv', '-T', '--', tmp, repo]);
    } else if (options.fetch) {
      options.log(`fetching ${access.shown} on ${master.hostname}`);
      await executor.mustRun(master, [...GIT, '-C', repo, 'fetch', '--quiet', '--prune', '--force', '--', access.url, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], { env, timeoutMs: GIT_TIMEOUT_MS });
    }
    // A tag, a branch (a bare clone keeps them as they are named), or a commit, in git's own order (tags before branches).
    for (const candidate of [`refs/tags/${wanted}`, `refs/heads/${wanted}`, wanted]) {
      const result = await executor.run(master, [...GIT, '-C', repo, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${candidate}^{commit}`], { env: GIT_ENV });
      if (result.exitCode === 0) return checkCommit(result.stdout.trim());
    }
    throw new ReleaseRefused(`revision ${wanted} cannot be checked out: no tag, branch or commit of that name in the repository`);
  }

  /** A file of a commit, from the master's repository (no release made); null when the commit has none. */
  async fileAt(group: SharedCodeGroup, master: Server, commit: string, path: string): Promise<string | null> {
    const result = await this.access.executorFor(master).run(master, [...GIT, '-C', repoDirOn(master, group), 'show', `${checkCommit(commit)}:${path}`], { env: GIT_ENV });
    return result.exitCode === 0 ? result.stdout : null;
  }

  /** The names of the files directly in a directory of a commit, from the master's repository. */
  async filesAt(group: SharedCodeGroup, master: Server, commit: string, dir: string): Promise<string[]> {
    const result = await this.access.executorFor(master).run(master, [...GIT, '-C', repoDirOn(master, group), 'ls-tree', '--name-only', '-z', checkCommit(commit), '--', `${dir.replace(/\/+$/, '')}/`], { env: GIT_ENV });
    if (result.exitCode !== 0) return [];
    return result.stdout.split('\0').filter(Boolean).map((p) => posix.basename(p));
  }

  /** The release directory of `commit` on the master, made from the repository unless it is there. */
  async make(group: SharedCodeGroup, master: Server, commit: string, log: Log): Promise<string> {
    const executor = this.access.executorFor(master);
    const dir = releaseDirOn(master, group, commit);
    if (await executor.exists(master, dir)) return dir;
    const tmp = `${dir}.tmp`;
    const tar = `${dir}.tar`;
    await executor.remove(master, tmp);
    await executor.mkdir(master, tmp);
    try {
      await executor.mustRun(master, [...GIT, '-C', repoDirOn(master, group), 'archive', '--format=tar', '-o', tar, commit], { env: GIT_ENV, timeoutMs: GIT_TIMEOUT_MS });
      await executor.mustRun(master, ['tar', '-x', '-f', tar, '-C', tmp], { timeoutMs: GIT_TIMEOUT_MS });
    } finally {
      await executor.remove(master, tar);
    }
    await executor.mustRun(master, ['mv', '-T', '--', tmp, dir]);
    log(`release ${commit} made in ${dir} on ${master.hostname}`);
    return dir;
  }

  /**
   * The release's manifest, parsed, every path it names present in the
   * release. At a group's creation the manifest it was given wins over the
   * release's file; for a later revision its own file does, and a revision
   * without one keeps the group's manifest (`fallback`).
   */
  async manifestOf(group: SharedCodeGroup, master: Server, commit: string, source: { given?: unknown; fallback?: unknown }): Promise<CodebaseManifest> {
    const executor = this.access.executorFor(master);
    const dir = releaseDirOn(master, group, commit);
    let plain = source.given;
    if (!plain) {
      const path = posix.join(dir, MANIFEST_FILE);
      const present = await executor.exists(master, path);
      if (!present && source.fallback) plain = source.fallback;
      else if (!present) throw new ReleaseRefused(`the revision has no ${MANIFEST_FILE}, and the group was given no manifest`);
    }
    if (!plain) {
      const path = posix.join(dir, MANIFEST_FILE);
      try {
        plain = JSON.parse((await executor.readFile(master, path)).toString());
      } catch (error) {
        throw new ReleaseRefused(`${MANIFEST_FILE} is not valid JSON: ${(error as Error).message}`);
      }
    }
    let manifest: CodebaseManifest;
    try {
      manifest = await parseManifest(plain);
    } catch (error) {
      if (error instanceof DomainError) throw new ReleaseRefused(`the manifest is invalid: ${error.message}`);
      throw error;
    }
    const paths = manifestSourcePaths(manifest).map((p) => posix.join(dir, p));
    const missing = (await executor.mustRun(master, ['sh', '-c', 'for p do [ -e "$p" ] || [ -L "$p" ] || printf "%s\\n" "$p"; done', 'check', ...paths])).split('\n').filter(Boolean);
    if (missing.length > 0) throw new ReleaseRefused(`the manifest names paths missing at ${commit}: ${missing.map((p) => posix.relative(dir, p)).join(', ')}`);
    return manifest;
  }

  /**
   * Before a release is synced: every server that will run the group's PHP
   * satisfies the manifest's `php` (version, extensions, settings a pool
   * cannot set), else the release is refused with each server's problems. A
   * server that cannot be asked is a failure to retry, not a refusal.
   */
  async checkPhp(group: SharedCodeGroup, master: Server, manifest: CodebaseManifest, out: { log: Log; error: Log }): Promise<void> {
    if (!manifest.php) return;
    const servers = phpServersOf(await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } }), { masterServerId: master.id });
    const checks = await Promise.all(servers.map((s) => checkServerPhp(this.access.executorFor(s), s, manifest.php)));
    for (const c of checks) {
      const what = c.binary ? `${c.binary}${c.version ? ` (PHP ${c.version})` : ''}` : 'no PHP';
      if (c.error) out.error(`PHP check: ${c.hostname} could not be asked: ${c.error}`);
      else out.log(`PHP check: ${c.hostname}: ${what}: ${c.ok ? 'meets the manifest' : c.problems.join('; ')}`);
      for (const note of c.notes) out.log(`  ${c.hostname}: ${note}`);
    }
    if (checks.some((c) => !c.ok && !c.error)) throw new ReleaseRefused(`PHP requirements not met: ${describePhpFailures(checks)}`);
    if (checks.some((c) => c.error)) throw new Error(`PHP requirements could not be checked: ${describePhpFailures(checks)}`);
  }

  /**
   * The servers that hold the group's releases besides its master: every
   * active dispatcher and handler (they may serve its installs), and each
   * cloud handler that serves one of them.
   */
  async serversOf(group: SharedCodeGroup): Promise<Server[]> {
    const all = await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } });
    const servers = phpServersOf(all, { masterServerId: group.masterServerId }).filter((s) => s.id !== group.masterServerId);
    const clouds = await this.dataSource
      .getRepository(InstallServer)
      .createQueryBuilder('isv')
      .innerJoin(Install, 'i', 'i.id = isv.installId')
      .select('DISTINCT isv.serverId', 'serverId')
      .where('i.sharedCodeGroupId = :group', { group: group.id })
      .andWhere("isv.role = 'cloud'")
      .getRawMany<{ serverId: number }>();
    const ids = new Set(servers.map((s) => s.id));
    for (const { serverId } of clouds) {
      const cloud = all.find((s) => s.id === Number(serverId));
      if (cloud && cloud.state !== 'down' && cloud.id !== group.masterServerId && !ids.has(cloud.id)) servers.push(cloud);
    }
    return servers;
  }

  /** The release from the master to every other server of the group (parents made first; rsync converges a killed run's partial copy). */
  async sync(group: SharedCodeGroup, master: Server, commit: string, servers: readonly Server[], log: Log): Promise<void> {
    const dir = releaseDirOn(master, group, commit);
    for (const server of servers) {
      if (server.state === 'down') {
        log(`${server.hostname} is down: it gets release ${commit.slice(0, 12)} when a later sync runs`);
        continue;
      }
      await this.access.executorFor(server).mkdir(server, posix.join(groupDirOn(server, group), RELEASES_DIR));
      await this.access.sync(master, server, dir);
      log(`synced release ${commit.slice(0, 12)} of ${group.name} to ${server.hostname}`);
    }
  }

  /** Records a release (its manifest) once it is on every server. */
  async record(group: SharedCodeGroup, commit: string, manifest: CodebaseManifest): Promise<void> {
    const releases = this.dataSource.getRepository(CodeRelease);
    const stored = JSON.parse(JSON.stringify(manifest)) as never;
    const found = await releases.findOneBy({ groupId: group.id, revision: commit });
    if (found) await releases.update({ id: found.id }, { manifest: stored, state: 'ready' });
    else await releases.insert({ groupId: group.id, revision: commit, manifest: stored, state: 'ready' });
  }

  /** The manifest of a release the catalog knows (the group's own revision: the group's manifest). */
  async recordedManifest(group: SharedCodeGroup, revision: string): Promise<CodebaseManifest> {
    if (revision === group.revision && group.manifest) return parseManifest(group.manifest);
    const row = await this.dataSource.getRepository(CodeRelease).findOneBy({ groupId: group.id, revision });
    if (!row?.manifest) throw new Error(`code group ${group.name} has no recorded release ${revision}`);
    return parseManifest(row.manifest);
  }

  /**
   * Removes releases of the group no install points at, keeping the group's
   * revision and the `keep` newest others (a rollback's way back), on the
   * master and every other server.
   */
  async prune(group: SharedCodeGroup, master: Server, keep: number, log: Log): Promise<string[]> {
    const releases = await this.dataSource.getRepository(CodeRelease).find({ where: { groupId: group.id, state: In(['ready', 'preparing']) }, order: { id: 'DESC' } });
    const inUse = new Set(
      (await this.dataSource.getRepository(Install).createQueryBuilder('i').select('DISTINCT i.codeRevision', 'r').where('i.sharedCodeGroupId = :g', { g: group.id }).getRawMany<{ r: string | null }>())
        .map((r) => r.r)
        .filter((r): r is string => r !== null),
    );
    const others = releases.filter((r) => r.revision !== group.revision);
    const pruned = others.slice(keep).filter((r) => !inUse.has(r.revision));
    if (pruned.length === 0) return [];
    const servers = [master, ...(await this.serversOf(group))].filter((s) => s.state !== 'down');
    for (const release of pruned) {
      for (const server of servers) await this.access.executorFor(server).remove(server, releaseDirOn(server, group, release.revision));
      await this.dataSource.getRepository(CodeRelease).update({ id: release.id }, { state: 'pruned' });
      log(`pruned release ${release.revision.slice(0, 12)} of ${group.name} on ${servers.map((s) => s.hostname).join(', ')}`);
    }
    return pruned.map((r) => r.revision);
  }
}

/**
 * The error as it may be shown: the repository's credentials removed from
 * its message (and, for a failed command, from the command and its stderr),
 * its kind kept so retries and refusals behave the same.
 */
export function redactedError(error: unknown, access: RepoAccess): unknown {
  if (error instanceof CommandFailedError) return new CommandFailedError(error.server, error.argv.map(access.redact), error.exitCode, access.redact(error.stderr));
  if (error instanceof HostTimeoutError) return new HostTimeoutError(error.server, error.argv.map(access.redact), error.timeoutMs);
  if (error instanceof Error) {
    error.message = access.redact(error.message);
    if (error.stack) error.stack = access.redact(error.stack);
  }
  return error;
}
