import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { InstallServer, InstallSiteIp, Install, Server, ServerIp, SharedCodeGroup, type ServerIpKind } from '../entities/index.js';

/** A server to add; ports default to 80 and 443 (null). */
export type NewServer = Omit<Server, 'id' | 'createdAt' | 'updatedAt' | OptionalServerField> & Partial<Pick<Server, OptionalServerField>>;
type OptionalServerField = 'httpPort' | 'httpsPort' | 'phpFpmPidFile' | 'leaseExpiresAt' | 'leaseRemindedAt';

@Injectable()
export class ServerRepository {
  constructor(
    @InjectRepository(Server) private readonly servers: Repository<Server>,
    private readonly dataSource: DataSource,
  ) {}

  list(): Promise<Server[]> {
    return this.servers.find({ order: { id: 'ASC' } });
  }

  count(): Promise<number> {
    return this.servers.count();
  }

  findById(id: number): Promise<Server | null> {
    return this.servers.findOne({ where: { id } });
  }

  findByHostname(hostname: string): Promise<Server | null> {
    return this.servers.findOne({ where: { hostname } });
  }

  insert(server: NewServer): Promise<Server> {
    return this.servers.save(this.servers.create(server));
  }

  async update(id: number, changes: Partial<NewServer>): Promise<Server | null> {
    if (Object.keys(changes).length > 0) await this.servers.update({ id }, changes);
    return this.findById(id);
  }

  /** What still depends on a server: installs it hosts or masters, code groups it masters, database role. */
  async usage(id: number): Promise<{ installs: number; codeGroups: number; databases: number; ipsHeld: number }> {
    const m = this.dataSource.manager;
    const [hosted, mastered, databases, codeGroups, ipsHeld] = await Promise.all([
      m.count(InstallServer, { where: { serverId: id } }),
      m.count(Install, { where: { masterServerId: id } }),
      m.count(Install, { where: { dbServerId: id } }),
      m.count(SharedCodeGroup, { where: { masterServerId: id } }),
      m.count(InstallSiteIp, { where: { serverId: id } }),
    ]);
    return { installs: Math.max(hosted, mastered), codeGroups, databases, ipsHeld };
  }

  /** Deletes a server and its unused IPs in one transaction. */
  async remove(id: number): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      await m.delete(ServerIp, { serverId: id });
      await m.delete(Server, { id });
    });
  }

  ips(serverId: number): Promise<ServerIp[]> {
    return this.dataSource.getRepository(ServerIp).find({ where: { serverId }, order: { id: 'ASC' } });
  }

  findIp(ip: string): Promise<ServerIp | null> {
    return this.dataSource.getRepository(ServerIp).findOne({ where: { ip } });
  }

  /** Adds IPs to a server's pool, all or none. */
  async addIps(serverId: number, ips: string[], kind: ServerIpKind, failoverGroup: string | null): Promise<ServerIp[]> {
    return this.dataSource.transaction(async (m) =>
      m.save(
        ips.map((ip) =>
          m.create(ServerIp, { serverId, ip, kind, failoverGroup, activeServerId: kind === 'floating' ? serverId : null }),
        ),
      ),
    );
  }

  async ipInUse(serverIpId: number): Promise<boolean> {
    return (await this.dataSource.getRepository(InstallSiteIp).count({ where: { serverIpId } })) > 0;
  }

  async removeIp(serverIpId: number): Promise<void> {
    await this.dataSource.getRepository(ServerIp).delete({ id: serverIpId });
  }
}
