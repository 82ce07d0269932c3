import { readFileSync } from 'node:fs';
import { Command, CommandRunner, Option } from 'nest-commander';
import { SERVER_STATES } from '@app/catalog';
import { validateDto } from '@app/common';
import { AddIpsDto, CreateServerDto, InventoryService, ServerView, UpdateServerDto } from '@app/hosts';
import { out, SnippetError, table } from './cli-output.js';
import { cliActor } from './token-create.command.js';

const by = () => ({ actor: cliActor(), via: 'cli' as const });

export function serverId(text: string | undefined): number {
  if (!/^\d{1,9}$/.test(text ?? '')) throw new SnippetError('the server id is a number (see server:list)');
  return Number(text);
}

@Command({ name: 'server:list', description: 'the server inventory' })
export class ServerListCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run(): Promise<void> {
    const servers = await this.inventory.list();
    out(table(['id', 'hostname', 'roles', 'transport', 'ssh', 'state'], servers.map((s) => [s.id, s.hostname, s.roles.join(','), s.transport, s.sshHost ? `${s.sshUser}@${s.sshHost}:${s.sshPort}` : null, s.state])));
  }
}

@Command({ name: 'server:show', arguments: '<id>', description: 'one server and its IP pool' })
export class ServerShowCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    const server = await this.inventory.get(serverId(id));
    out(JSON.stringify(ServerView.of(server), null, 2));
    const ips = await this.inventory.ips(server.id);
    if (ips.length > 0) out(table(['ip', 'kind', 'group', 'carried by'], ips.map((i) => [i.ip, i.kind, i.failoverGroup, i.activeServerId])));
  }
}

@Command({ name: 'server:add', description: 'add a server from a JSON file (the fields of POST /v1/servers)' })
export class ServerAddCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run(_args: string[], options: { file?: string }): Promise<void> {
    if (!options.file) throw new SnippetError('give --file server.json (see the OpenAPI schema CreateServerDto)');
    let plain: unknown;
    try {
      plain = JSON.parse(readFileSync(options.file, 'utf8'));
    } catch (error) {
      throw new SnippetError(`cannot read ${options.file}: ${error instanceof Error ? error.message : String(error)}`);
    }
    const server = await this.inventory.create(await validateDto(CreateServerDto, plain), by());
    out(`server ${server.id} ${server.hostname} added; check it with server:check ${server.id}`);
  }

  @Option({ flags: '--file <path>', description: 'JSON file describing the server' })
  parseFile(value: string): string {
    return value;
  }
}

@Command({ name: 'server:state', arguments: '<id> <state>', description: `set a server's state (${SERVER_STATES.join(', ')})` })
export class ServerStateCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run([id, state]: string[]): Promise<void> {
    const server = await this.inventory.update(serverId(id), await validateDto(UpdateServerDto, { state }), by());
    out(`server ${server.id} ${server.hostname} is ${server.state}`);
  }
}

@Command({ name: 'server:remove', arguments: '<id>', description: 'remove a server that nothing uses any more' })
export class ServerRemoveCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    await this.inventory.remove(serverId(id), by());
    out(`server ${id} removed`);
  }
}

@Command({ name: 'server:check', arguments: '<id>', description: 'reachability, host key, roots and tools; exit 1 if anything fails' })
export class ServerCheckCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    const result = await this.inventory.check(serverId(id));
    for (const item of result.items) out(`${item.ok ? 'ok  ' : 'FAIL'} ${item.item}: ${item.detail}`);
    if (!result.ok) throw new SnippetError(`server ${id} failed its check`);
  }
}

@Command({ name: 'server:ips:add', arguments: '<id> <ips...>', description: "add IPs to a server's pool (--kind shared|dedicated|floating, --group carp1)" })
export class ServerIpsAddCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run([id, ...ips]: string[], options: { kind?: string; group?: string }): Promise<void> {
    const dto = await validateDto(AddIpsDto, { ips, kind: options.kind ?? 'shared', ...(options.group ? { failoverGroup: options.group } : {}) });
    const added = await this.inventory.addIps(serverId(id), dto, by());
    out(`added ${added.map((i) => i.ip).join(', ')} to server ${id}`);
  }

  @Option({ flags: '--kind <kind>', description: 'shared (default), dedicated or floating' })
  parseKind(value: string): string {
    return value;
  }

  @Option({ flags: '--group <name>', description: 'failover group of floating IPs, e.g. carp1' })
  parseGroup(value: string): string {
    return value;
  }
}

@Command({ name: 'server:ips:remove', arguments: '<id> <ip>', description: 'remove an IP no site uses' })
export class ServerIpsRemoveCommand extends CommandRunner {
  constructor(private readonly inventory: InventoryService) {
    super();
  }

  async run([id, ip]: string[]): Promise<void> {
    await this.inventory.removeIp(serverId(id), ip ?? '', by());
    out(`removed ${ip} from server ${id}`);
  }
}
