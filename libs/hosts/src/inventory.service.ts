import { Inject, Injectable } from '@nestjs/common';
import { AuditEventRepository, ServerRepository, type AuditActor, type NewServer, type Server, type ServerIp } from '@app/catalog';
import { DomainError, NotFoundError, validateDto } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { CreateServerDto, type AddIpsDto, type UpdateServerDto } from './dto/server.dto.js';
import { ServerCheckService, type CheckItem } from './server-check.service.js';

/** The server inventory (the seed's handlers and servers tables), from the admin API and the snippets. */
@Injectable()
export class InventoryService {
  constructor(
    private readonly servers: ServerRepository,
    private readonly audit: AuditEventRepository,
    private readonly checks: ServerCheckService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
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
    this.checkTransport(dto);
    const server = await this.servers.insert(rowOf(dto));
    await this.audit.record({ ...by, action: 'server.create', targetType: 'server', targetId: server.id, details: { hostname: server.hostname } });
    return server;
  }

  /**
   * Applies a patch after checking the server as it would be, with every rule
   * of an addition: a patch without `transport` still has its SSH fields
   * checked, and its roots are checked against the ones it keeps.
   */
  async update(id: number, dto: UpdateServerDto, by: AuditActor): Promise<Server> {
    const before = await this.get(id);
    const changes = Object.fromEntries(Object.entries(dto).filter(([, v]) => v !== undefined)) as Partial<Server>;
    const merged = await validateDto(CreateServerDto, { ...editableFieldsOf(before), ...changes });
    if (merged.hostname !== before.hostname) {
      const other = await this.servers.findByHostname(merged.hostname);
      if (other && other.id !== id) throw new DomainError('SERVER_EXISTS', `A server named ${merged.hostname} is already in the inventory`, 409);
    }
    // An existing local server (the embedded default's, or one added while allowed) keeps working; becoming one needs the permission.
    if (before.transport !== 'local') this.checkTransport(merged);
    const server = (await this.servers.update(id, rowOf(merged)))!;
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

  /**
   * `local` runs commands as the engine's own user on its own machine: the
   * embedded default's one server, or where an operator allowed it
   * (ALLOW_LOCAL_TRANSPORT).
   */
  private checkTransport(server: CreateServerDto): void {
    if (server.transport === 'local' && !this.config.embedded && !this.config.allowLocalTransport) {
      throw new DomainError(
        'LOCAL_TRANSPORT_NOT_ALLOWED',
        'transport "local" runs commands on the engine machine itself: it is only for the embedded default (SQLite catalog) or when ALLOW_LOCAL_TRANSPORT=true',
        400,
        { transport: 'local' },
      );
    }
  }
}

/** The inventory row of a validated server; SSH fields are kept only for SSH servers. */
function rowOf(dto: CreateServerDto): NewServer {
  const ssh = dto.transport === 'ssh';
  return {
    hostname: dto.hostname.toLowerCase(),
    privateIp: dto.privateIp ?? null,
    roles: dto.roles,
    transport: dto.transport,
    sshHost: ssh ? (dto.sshHost ?? null) : null,
    sshPort: ssh ? (dto.sshPort ?? 22) : null,
    sshUser: ssh ? (dto.sshUser ?? null) : null,
    sshKeyRef: dto.sshKeyRef ?? null,
    sshHostKey: ssh ? (dto.sshHostKey ?? null) : null,
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
    phpFpmPidFile: dto.phpFpmPidFile ?? null,
  };
}

/** Every field of an addition (the compiler keeps this list whole): what a patch is merged into. */
const DTO_FIELDS: Record<keyof CreateServerDto, true> = {
  hostname: true,
  privateIp: true,
  roles: true,
  transport: true,
  sshHost: true,
  sshPort: true,
  sshUser: true,
  sshKeyRef: true,
  sshHostKey: true,
  homeRoot: true,
  sharedCodeRoot: true,
  nginxConfDir: true,
  cronDir: true,
  certsRoot: true,
  phpFpmPoolDir: true,
  state: true,
  capacity: true,
  dbOptionsFile: true,
  nginxPidFile: true,
  phpFpmPidFile: true,
};

/** A stored server as the plain body of an addition, to validate it as one. */
function editableFieldsOf(server: Server): Record<string, unknown> {
  return Object.fromEntries(
    Object.keys(DTO_FIELDS).map((key) => {
      const value = server[key as keyof CreateServerDto];
      return [key, Array.isArray(value) ? [...value] : value];
    }),
  );
}
