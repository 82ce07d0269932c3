import { Injectable } from '@nestjs/common';
import { AuditEventRepository, ServerRepository, type AuditActor, type Server, type ServerIp } from '@app/catalog';
import { DomainError, NotFoundError } from '@app/common';
import type { AddIpsDto, CreateServerDto, UpdateServerDto } from './dto/server.dto.js';
import { ServerCheckService, type CheckItem } from './server-check.service.js';

/** The server inventory (the seed's handlers and servers tables), from the admin API and the snippets. */
@Injectable()
export class InventoryService {
  constructor(
    private readonly servers: ServerRepository,
    private readonly audit: AuditEventRepository,
    private readonly checks: ServerCheckService,
  ) {}

  list(): Promise<Server[]> {
    return this.servers.list();
  }

  async get(id: number): Promise<Server> {
    const server = await this.servers.findById(id);
    if (!server) throw new NotFoundError('Server', id);
    return server;
  }

  async create(dto: CreateServerDto, by: AuditActor): Promise<Server> {
    if (await this.servers.findByHostname(dto.hostname.toLowerCase())) {
      throw new DomainError('SERVER_EXISTS', `A server named ${dto.hostname} is already in the inventory`, 409, { hostname: dto.hostname });
    }
    const server = await this.servers.insert({
      hostname: dto.hostname.toLowerCase(),
      privateIp: dto.privateIp ?? null,
      roles: dto.roles,
      transport: dto.transport,
      sshHost: dto.transport === 'ssh' ? (dto.sshHost ?? null) : null,
      sshPort: dto.transport === 'ssh' ? (dto.sshPort ?? 22) : null,
      sshUser: dto.transport === 'ssh' ? (dto.sshUser ?? null) : null,
      sshKeyRef: dto.sshKeyRef ?? null,
      sshHostKey: dto.transport === 'ssh' ? (dto.sshHostKey ?? null) : null,
      homeRoot: dto.homeRoot,
      sharedCodeRoot: dto.sharedCodeRoot,
      nginxConfDir: dto.nginxConfDir,
      cronDir: dto.cronDir,
      certsRoot: dto.certsRoot,
      phpFpmPoolDir: dto.phpFpmPoolDir ?? null,
      state: dto.state ?? 'active',
      capacity: dto.capacity ?? null,
      dbOptionsFile: dto.dbOptionsFile ?? null,
      nginxPidFile: dto.nginxPidFile ?? null,
    });
    await this.audit.record({ ...by, action: 'server.create', targetType: 'server', targetId: server.id, details: { hostname: server.hostname } });
    return server;
  }

  async update(id: number, dto: UpdateServerDto, by: AuditActor): Promise<Server> {
    const before = await this.get(id);
    const changes = Object.fromEntries(Object.entries(dto).filter(([, v]) => v !== undefined)) as Partial<Server>;
    if (changes.hostname) {
      changes.hostname = changes.hostname.toLowerCase();
      const other = await this.servers.findByHostname(changes.hostname);
      if (other && other.id !== id) throw new DomainError('SERVER_EXISTS', `A server named ${changes.hostname} is already in the inventory`, 409);
    }
    const transport = changes.transport ?? before.transport;
    const sshHostKey = changes.sshHostKey !== undefined ? changes.sshHostKey : before.sshHostKey;
    if (transport === 'ssh' && !sshHostKey) throw new DomainError('VALIDATION_FAILED', 'An SSH server needs a pinned sshHostKey', 400);
    const server = (await this.servers.update(id, changes))!;
    await this.audit.record({ ...by, action: 'server.update', targetType: 'server', targetId: id, details: { fields: Object.keys(changes) } });
    return server;
  }

  /** Refused while installs, code groups or site IPs still use the server. */
  async remove(id: number, by: AuditActor): Promise<void> {
    const server = await this.get(id);
    const usage = await this.servers.usage(id);
    if (usage.installs + usage.codeGroups + usage.databases + usage.ipsHeld > 0) {
      throw new DomainError(
        'SERVER_IN_USE',
        `${server.hostname} still hosts ${usage.installs} install(s), masters ${usage.codeGroups} code group(s), serves ${usage.databases} database(s) and ${usage.ipsHeld} site IP(s); move them first`,
        409,
        usage,
      );
    }
    await this.servers.remove(id);
    await this.audit.record({ ...by, action: 'server.remove', targetType: 'server', targetId: id, details: { hostname: server.hostname } });
  }

  async ips(id: number): Promise<ServerIp[]> {
    await this.get(id);
    return this.servers.ips(id);
  }

  async addIps(id: number, dto: AddIpsDto, by: AuditActor): Promise<ServerIp[]> {
    const server = await this.get(id);
    for (const ip of dto.ips) {
      const existing = await this.servers.findIp(ip);
      if (existing) throw new DomainError('IP_EXISTS', `${ip} is already in the pool (server ${existing.serverId}); nothing was added`, 409, { ip });
    }
    const added = await this.servers.addIps(id, dto.ips, dto.kind, dto.failoverGroup ?? null);
    await this.audit.record({ ...by, action: 'server.ips.add', targetType: 'server', targetId: id, details: { hostname: server.hostname, ips: dto.ips, kind: dto.kind } });
    return added;
  }

  async removeIp(id: number, ip: string, by: AuditActor): Promise<void> {
    await this.get(id);
    const row = await this.servers.findIp(ip);
    if (!row || row.serverId !== id) throw new NotFoundError(`IP on server ${id}`, ip);
    if (await this.servers.ipInUse(row.id)) throw new DomainError('IP_IN_USE', `${ip} serves a site; move the site first`, 409, { ip });
    await this.servers.removeIp(row.id);
    await this.audit.record({ ...by, action: 'server.ips.remove', targetType: 'server', targetId: id, details: { ip } });
  }

  async check(id: number): Promise<{ ok: boolean; items: CheckItem[] }> {
    return this.checks.check(await this.get(id));
  }
}
