import { Injectable } from '@nestjs/common';
import type { Server } from '@app/catalog';
import { rootsOf } from './server-path.js';
import { ServerAccess } from './server-access.service.js';

export interface CheckItem {
  item: string;
  ok: boolean;
  detail: string;
}

/**
 * More items of a server's check, from a module that knows more than the
 * inventory (the cloud-handler module: PHP extensions of the code groups,
 * reachability from the dispatchers). Hosts cannot import those modules;
 * they register here when they start. A contributor returns no item for a
 * server it has nothing to say about, and reports its failures as items.
 */
export type ServerCheckContributor = (server: Server) => Promise<CheckItem[]>;

/** Tools each role needs on a server. */
const TOOLS: Record<string, string[][]> = {
  // perl (Debian's essential perl-base): the SSH command runner and symlinkMany.
  all: [['rsync'], ['perl']],
  // git: a code group's master clones and updates its checkout.
  dispatcher: [['nginx'], ['git']],
  handler: [['php-fpm', 'php-fpm8.2', 'php-fpm8.3', 'php-fpm8.1']],
  cloud: [['php-fpm', 'php-fpm8.2', 'php-fpm8.3', 'php-fpm8.1']],
  database: [['mariadb', 'mysql']],
};

/**
 * `server check`: reachable (and, over SSH, the pinned host key matches),
 * every root a writable directory, the tools its roles need present. Each item
 * is reported; the check never stops at the first failure.
 */
@Injectable()
export class ServerCheckService {
  private readonly contributors: { name: string; check: ServerCheckContributor }[] = [];

  constructor(private readonly access: ServerAccess) {}

  /** Adds a contributor's items to every check from now on (once per name). */
  addContributor(name: string, check: ServerCheckContributor): void {
    if (!this.contributors.some((c) => c.name === name)) this.contributors.push({ name, check });
  }

  async check(server: Server): Promise<{ ok: boolean; items: CheckItem[] }> {
    const executor = this.access.executorFor(server);
    const items: CheckItem[] = [];
    try {
      const uname = await executor.mustRun(server, ['uname', '-n'], { timeoutMs: 15_000 });
      items.push({ item: 'reachable', ok: true, detail: `${server.transport}, answers as ${uname.trim()}` });
    } catch (error) {
      items.push({ item: 'reachable', ok: false, detail: error instanceof Error ? error.message : String(error) });
      return { ok: false, items };
    }
    for (const root of rootsOf(server)) {
      const r = await executor.run(server, ['test', '-d', root, '-a', '-w', root]);
      items.push({ item: `root ${root}`, ok: r.exitCode === 0, detail: r.exitCode === 0 ? 'writable directory' : 'missing or not writable' });
    }
    const needed = [...TOOLS.all!, ...server.roles.flatMap((role) => TOOLS[role] ?? [])];
    for (const alternatives of needed) {
      const found = await this.findTool(server, alternatives);
      items.push({ item: `tool ${alternatives[0]}`, ok: found !== null, detail: found ?? `none of ${alternatives.join(', ')} found` });
    }
    for (const contributor of this.contributors) {
      try {
        items.push(...(await contributor.check(server)));
      } catch (error) {
        items.push({ item: contributor.name, ok: false, detail: error instanceof Error ? error.message : String(error) });
      }
    }
    return { ok: items.every((i) => i.ok), items };
  }

  private async findTool(server: Server, names: string[]): Promise<string | null> {
    const executor = this.access.executorFor(server);
    for (const name of names) {
      for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/sbin', '/bin']) {
        if ((await executor.run(server, ['test', '-x', `${dir}/${name}`])).exitCode === 0) return `${dir}/${name}`;
      }
    }
    return null;
  }
}
