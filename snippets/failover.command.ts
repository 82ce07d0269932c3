import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InjectDataSource } from '@nestjs/typeorm';
import { Command, CommandRunner, Option } from 'nest-commander';
import type { DataSource } from 'typeorm';
import { FailoverNode, Server } from '@app/catalog';
import { IP_MANAGER_JOURNAL, IpJournal, IpManager, KeepalivedApplyService, LinuxNetwork, parseNodeState, recordIpActions, VRRP_EVENTS, type VrrpEvent } from '@app/failover';
import { out, SnippetError } from './cli-output.js';
import { serverId } from './servers.command.js';

interface NodeOptions {
  server?: string;
  interface?: string;
  confDir?: string;
  pidFile?: string;
}

/** Makes a dispatcher a failover node: where its keepalived reads its configuration, which interface carries the floating IPs. */
@Command({ name: 'keepalived:node', description: 'register a dispatcher for floating IP failover (--server, --interface, --conf-dir, --pid-file)' })
export class KeepalivedNodeCommand extends CommandRunner {
  constructor(private readonly failover: KeepalivedApplyService) {
    super();
  }

  async run(_args: string[], o: NodeOptions): Promise<void> {
    if (!o.interface) throw new SnippetError('--interface is required (the NIC carrying the floating IPs, e.g. eth0)');
    const node = await this.failover.register(serverId(o.server), { interface: o.interface, confDir: o.confDir ?? '/etc/keepalived', pidFile: o.pidFile ?? '/run/keepalived.pid' });
    out(`server ${node.serverId}: failover node on ${node.interface}, keepalived files in ${node.confDir}; apply with keepalived:apply`);
  }

  @Option({ flags: '--server <id>' }) server(v: string) { return v; }
  @Option({ flags: '--interface <nic>' }) iface(v: string) { return v; }
  @Option({ flags: '--conf-dir <dir>' }) confDir(v: string) { return v; }
  @Option({ flags: '--pid-file <file>' }) pidFile(v: string) { return v; }
}

/** Renders, checks (keepalived -t), swaps and reloads keepalived's configuration of every failover node (or one). */
@Command({ name: 'keepalived:apply', description: "apply keepalived's configuration from the catalog (--server <id>; --dry-run prints it)" })
export class KeepalivedApplyCommand extends CommandRunner {
  constructor(
    private readonly failover: KeepalivedApplyService,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {
    super();
  }

  async run(_args: string[], o: { server?: string; dryRun?: boolean }): Promise<void> {
    const nodes = await this.dataSource.getRepository(FailoverNode).find({ where: o.server ? { serverId: serverId(o.server) } : {}, order: { serverId: 'ASC' } });
    if (nodes.length === 0) throw new SnippetError('no failover node (register one with keepalived:node)');
    for (const node of nodes) {
      if (o.dryRun) {
        const server = await this.dataSource.getRepository(Server).findOneByOrFail({ id: node.serverId });
        out(`# ${server.hostname}: ${join(node.confDir, 'keepalived.conf')}`);
        out((await this.failover.render(node, server)).conf.trimEnd());
        continue;
      }
      const r = await this.failover.apply(node.serverId);
      out(`${r.server}: ${r.changed ? (r.reloaded ? 'applied, keepalived reloaded' : 'applied (keepalived not running)') : 'unchanged'}; groups ${r.groups.join(', ') || '(none)'}${r.collected ? `; ${r.collected} journal line(s) recorded` : ''}`);
      for (const w of r.warnings) out(`  warning: ${w}`);
    }
  }

  @Option({ flags: '--server <id>' }) server(v: string) { return v; }
  @Option({ flags: '--dry-run' }) dryRun() { return true; }
}

/**
 * ip-manager by hand, on the dispatcher: `ip-manager --state /etc/keepalived/ip-manager.json carp2 MASTER`.
 * keepalived itself runs the engine's standalone entry (it must work without the catalog); this snippet does
 * the same and records to the catalog at once.
 */
@Command({ name: 'ip-manager', arguments: '<group> <event>', description: 'take (MASTER) or release (BACKUP, FAULT, STOP) a failover group’s floating IPs on this node' })
export class IpManagerCommand extends CommandRunner {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    super();
  }

  async run([group, eventText]: string[], o: { state?: string; dryRun?: boolean }): Promise<void> {
    const event = (eventText ?? '').toUpperCase() as VrrpEvent;
    if (!VRRP_EVENTS.includes(event)) throw new SnippetError(`the event is one of ${VRRP_EVENTS.join(', ')}`);
    const statePath = o.state ?? '/etc/keepalived/ip-manager.json';
    const state = parseNodeState(readFileSync(statePath, 'utf8'));
    const g = state.groups.find((x) => x.name === group);
    if (!g) throw new SnippetError(`no failover group ${group} in ${statePath}`);
    if (o.dryRun) {
      out(`${event} ${group} on ${state.hostname} (${state.interface}) would act on: ${g.ips.join(', ')}`);
      return;
    }
    const records = await new IpManager(new LinuxNetwork(state.interface), { log: (l) => out(String(l.msg)) }).handle(state, group!, event);
    const journal = new IpJournal(join(dirname(statePath), IP_MANAGER_JOURNAL));
    journal.append(records);
    out(`recorded ${await journal.flush((r) => recordIpActions(this.dataSource, r))} action(s) to the catalog`);
    if (records.some((r) => r.action === 'failed')) throw new SnippetError('an IP could not be moved: see above');
  }

  @Option({ flags: '--state <file>' }) state(v: string) { return v; }
  @Option({ flags: '--dry-run' }) dryRun() { return true; }
}
