import { Inject, Injectable } from '@nestjs/common';
import type { Install, Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { NameConflictError } from '@app/databases';
import { ServerAccess } from '@app/hosts';
import { installUserComment, managesPhp, phpIdOf, phpUserOf } from '@app/webserver';
import { homeOn } from './build-context.js';

/** What `ensure` found: the account made now, or one an earlier run of this install made. */
export type InstallUserOutcome = 'created' | 'ours';

/**
 * The install's system user and group on the servers whose PHP the engine
 * manages (its pool runs as them, its writable files are theirs, its config
 * files are readable by their group alone). Made with a comment naming the
 * install; an account or group of that name without it is someone else's:
 * a conflict, never adopted, never removed.
 */
@Injectable()
export class InstallUsers {
  constructor(
    private readonly access: ServerAccess,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** Whether the server runs the install's PHP as the install's own user. */
  managed(server: Server): boolean {
    return managesPhp(server, this.config);
  }

  /** `user:group` that owns what the install's PHP writes on `server`: its own user there, else the shared web user. */
  phpOwner(server: Server, install: Pick<Install, 'id'>): { user: string; group: string } {
    if (this.managed(server)) return { user: phpUserOf(install), group: phpUserOf(install) };
    const [user, group] = this.config.webUser.split(':');
    return { user: user!, group: group ?? user! };
  }

  /** The shared web user's group (nginx reads static files through it). */
  webGroup(): string {
    const [user, group] = this.config.webUser.split(':');
    return group ?? user!;
  }

  async ensure(server: Server, install: Install): Promise<InstallUserOutcome> {
    const executor = this.access.executorFor(server);
    const name = phpUserOf(install);
    const id = String(phpIdOf(install));
    const found = await this.lookup(server, install);
    if (found === 'ours') return 'ours';
    if (found === 'foreign') throw new NameConflictError(`${server.hostname} already has a system account ${name} that install ${install.id} did not create: left as it is`);
    // The group first, with the install's own id: a group of that name with another id is someone else's; with this one, an earlier run's.
    const group = await executor.run(server, ['getent', 'group', name]);
    if (group.exitCode === 0 && group.stdout.trim().split(':')[2] !== id) {
      throw new NameConflictError(`${server.hostname} already has a group ${name} that install ${install.id} did not create: left as it is`);
    }
    if (group.exitCode !== 0) {
      const made = await executor.run(server, ['groupadd', '--gid', id, name]);
      if (made.exitCode !== 0) throw new NameConflictError(`groupadd ${name} (gid ${id}) on ${server.hostname} failed: ${made.stderr.trim()}`);
    }
    // Ids of the install's own (not the system range: ~900 accounts; not useradd's choice: the same on every server).
    const made = await executor.run(server, ['useradd', '--uid', id, '--gid', id, '--no-create-home', '--home-dir', homeOn(server, install), '--shell', '/usr/sbin/nologin', '--comment', installUserComment(install), name]);
    if (made.exitCode !== 0) {
      // Two runs racing, or the name taken between the look and the add: look again before failing.
      if ((await this.lookup(server, install)) === 'ours') return 'ours';
      throw new NameConflictError(`useradd ${name} (uid ${id}) on ${server.hostname} failed (exit ${made.exitCode}): ${made.stderr.trim()}`);
    }
    return 'created';
  }

  /** Removes the install's account (and its group) when it is the install's; says what it did. */
  async remove(server: Server, install: Install): Promise<'removed' | 'absent' | 'not-ours'> {
    const found = await this.lookup(server, install);
    if (found !== 'ours') return found === 'absent' ? 'absent' : 'not-ours';
    const name = phpUserOf(install);
    const executor = this.access.executorFor(server);
    // --force: the install's PHP workers may still idle (ondemand children after the last request) until the pool rebuild that
    // follows drops its pool; they hold the uid, which is the install's alone, not the account.
    const gone = await executor.run(server, ['userdel', '--force', name]);
    if (gone.exitCode !== 0 && (await this.lookup(server, install)) !== 'absent') {
      throw new Error(`userdel ${name} on ${server.hostname} failed (exit ${gone.exitCode}): ${gone.stderr.trim()}`);
    }
    // userdel removes the user's own group unless another account has it as primary; one left behind is the install's alone.
    if ((await executor.run(server, ['getent', 'group', name])).exitCode === 0) await executor.run(server, ['groupdel', name]);
    return 'removed';
  }

  private async lookup(server: Server, install: Install): Promise<'absent' | 'ours' | 'foreign'> {
    const r = await this.access.executorFor(server).run(server, ['getent', 'passwd', phpUserOf(install)]);
    if (r.exitCode === 2) return 'absent';
    if (r.exitCode !== 0) throw new Error(`getent passwd on ${server.hostname} failed (exit ${r.exitCode})`);
    const gecos = r.stdout.trim().split(':')[4] ?? '';
    return gecos === installUserComment(install) ? 'ours' : 'foreign';
  }
}
