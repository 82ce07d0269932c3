import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { InstallServer, Server, type Install } from '@app/catalog';

/** The servers that hold a copy of an install's home (its config files): master, replicas, its active cloud handlers. */
@Injectable()
export class InstallHomes {
  constructor(private readonly dataSource: DataSource) {}

  /** Per install, its servers (the master first; down ones included: the caller decides). A few queries for any number of installs. */
  async of(installs: readonly Pick<Install, 'id' | 'masterServerId'>[]): Promise<Map<number, Server[]>> {
    const out = new Map<number, Server[]>();
    if (installs.length === 0) return out;
    const rows: InstallServer[] = [];
    for (let i = 0; i < installs.length; i += 1000) {
      rows.push(...(await this.dataSource.getRepository(InstallServer).find({ where: { installId: In(installs.slice(i, i + 1000).map((x) => x.id)) }, order: { id: 'ASC' } })));
    }
    const held = rows.filter((r) => r.role !== 'cloud' || r.state === 'active');
    const ids = [...new Set([...installs.map((i) => i.masterServerId!), ...held.map((r) => r.serverId)])];
    const servers = new Map((await this.dataSource.getRepository(Server).find({ where: { id: In(ids) } })).map((s) => [s.id, s]));
    for (const install of installs) {
      const own = [...new Set([install.masterServerId!, ...held.filter((r) => r.installId === install.id).map((r) => r.serverId)])];
      out.set(install.id, own.map((id) => servers.get(id)).filter((s): s is Server => s !== undefined));
    }
    return out;
  }
}

/** Where the install's PHP connects from: its servers' private IPs (loopback for one without), as the build made its accounts. */
export function clientHosts(servers: readonly Server[]): string[] {
  return [...new Set(servers.map((s) => s.privateIp ?? '127.0.0.1'))];
}

/** Runs `fn` over `items`, at most `limit` at once; results in order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}
