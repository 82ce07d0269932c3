import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, Server, SharedCodeGroup } from '@app/catalog';
import { releaseDirOn } from '@app/codebases';
import { ServerAccess } from '@app/hosts';

/** The servers that hold an install's home, and whether they hold a group's release: what the codebase change checks before it queues and again when it runs. */
@Injectable()
export class HomeServers {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
  ) {}

  /** Its master first, then its replicas, then its active cloud handlers (down ones included: the caller decides). */
  async of(install: Pick<Install, 'id' | 'masterServerId'>): Promise<Server[]> {
    const rows = await this.dataSource.getRepository(InstallServer).find({ where: { installId: install.id }, order: { id: 'ASC' } });
    const held = rows.filter((r) => r.role !== 'cloud' || r.state === 'active').map((r) => r.serverId);
    const ids = [...new Set([install.masterServerId!, ...held])];
    const servers = new Map((await this.dataSource.getRepository(Server).find({ where: { id: In(ids) } })).map((s) => [s.id, s]));
    return ids.map((id) => servers.get(id)).filter((s): s is Server => s !== undefined);
  }

  /** The hostnames of those servers where `group`'s release of `revision` is missing. */
  async missingRelease(servers: readonly Server[], group: SharedCodeGroup, revision: string): Promise<string[]> {
    const missing: string[] = [];
    for (const server of servers) {
      if (!(await this.access.executorFor(server).exists(server, releaseDirOn(server, group, revision)))) missing.push(server.hostname);
    }
    return missing;
  }
}
