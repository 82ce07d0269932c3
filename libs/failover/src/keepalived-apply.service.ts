import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { FailoverNode, Server, ServerIp } from '@app/catalog';
import { DomainError } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { quoteArg, ServerAccess, type ServerRoots } from '@app/hosts';
import { failoverGroups } from './failover-plan.js';
import { recordIpActions } from './ip-manager/holder-recorder.js';
import type { IpRecord } from './ip-manager/ip-manager.js';
import type { NodeState } from './ip-manager/node-state.js';
import { keepalivedCheckProblems, renderKeepalived } from './keepalived-render.js';

/** The argv that runs ip-manager on a dispatcher (node and the compiled entry): the wrapper script execs it. */
export const IP_MANAGER_COMMAND = Symbol('IP_MANAGER_COMMAND');

export const KEEPALIVED_CONF = 'keepalived.conf';
export const IP_MANAGER_SCRIPT = 'ip-manager';
export const IP_MANAGER_STATE = 'ip-manager.json';
export const IP_MANAGER_ENV = 'ip-manager.env';
export const IP_MANAGER_JOURNAL = 'ip-manager.journal';
export const IP_MANAGER_LOG = 'ip-manager.log';

/** This engine's own ip-manager entry: the same installation runs on the dispatchers. */
export function defaultIpManagerCommand(): string[] {
  const built = fileURLToPath(new URL('./ip-manager/ip-manager.main.js', import.meta.url));
  // Under ts sources (tests), the compiled twin in dist/.
  const entry = existsSync(built) ? built : built.replace(/\/libs\/failover\/src\//, '/dist/libs/failover/src/');
  return [process.execPath, entry];
}

export interface KeepalivedApplied {
  server: string;
  changed: boolean;
  reloaded: boolean;
  groups: string[];
  /** Journal lines the node had not recorded (its catalog was unreachable), recorded now. */
  collected: number;
  /** What will not stop keepalived but will stop a moved IP from serving (ip_nonlocal_bind off). */
  warnings: string[];
}

/**
 * keepalived's configuration of each failover node, applied like the nginx
 * one: render from the catalog, write beside the live file, check it with
 * `keepalived -t` (a weak check: see keepalivedCheckProblems; the notify
 * script's presence is checked here since keepalived does not), swap, and
 * reload (SIGHUP) when keepalived runs. The ip-manager state file goes
 * first, so a notify run never sees groups the config does not have yet.
 */
@Injectable()
export class KeepalivedApplyService {
  private readonly logger = new Logger(KeepalivedApplyService.name);
  private readonly command: string[];

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    @Optional() @Inject(IP_MANAGER_COMMAND) command?: string[],
  ) {
    this.command = command ?? defaultIpManagerCommand();
  }

  /** Registers (or changes) a dispatcher as a failover node. */
  async register(serverId: number, settings: { interface: string; confDir: string; pidFile: string | null }): Promise<FailoverNode> {
    const server = await this.dataSource.getRepository(Server).findOneBy({ id: serverId });
    if (!server) throw new DomainError('SERVER_NOT_FOUND', `No server ${serverId}`, 404);
    if (!server.roles.includes('dispatcher')) throw new DomainError('NOT_A_DISPATCHER', `${server.hostname} is not a dispatcher: only dispatchers hold floating IPs`, 409);
    if (!server.privateIp) throw new DomainError('NO_PRIVATE_IP', `${server.hostname} has no private IP: keepalived's unicast adverts need one`, 409);
    if (!posix.isAbsolute(settings.confDir) || (settings.pidFile !== null && !posix.isAbsolute(settings.pidFile))) throw new DomainError('INVALID_PATH', 'confDir and pidFile must be absolute paths', 400);
    const repo = this.dataSource.getRepository(FailoverNode);
    const existing = await repo.findOneBy({ serverId });
    return repo.save({ ...(existing ?? {}), serverId, interface: settings.interface, confDir: settings.confDir, pidFile: settings.pidFile });
  }

  async applyAll(): Promise<KeepalivedApplied[]> {
    const nodes = await this.dataSource.getRepository(FailoverNode).find({ order: { serverId: 'ASC' } });
    const out: KeepalivedApplied[] = [];
    for (const node of nodes) out.push(await this.apply(node.serverId));
    return out;
  }

  async apply(serverId: number): Promise<KeepalivedApplied> {
    const node = await this.dataSource.getRepository(FailoverNode).findOneBy({ serverId });
    if (!node) throw new DomainError('NOT_A_FAILOVER_NODE', `Server ${serverId} is not a failover node: register it first`, 404);
    const server = await this.dataSource.getRepository(Server).findOneByOrFail({ id: serverId });
    const { conf, state, groups } = await this.render(node, server);
    const script = this.script(node);
    const env = `CATALOG_URL=${quoteArg(catalogUrl(this.config))}\nexport CATALOG_URL\n`;
    const digest = createHash('sha256').update(conf).update(JSON.stringify(state)).update(script).update(env).digest('hex');
    const executor = this.access.executorFor(server);
    // Only keepalived's directory is writable here, whatever the server's other roots are.
    const target: ServerRoots = { ...server, homeRoot: node.confDir, sharedCodeRoot: node.confDir, nginxConfDir: node.confDir, cronDir: node.confDir, certsRoot: node.confDir, phpFpmPoolDir: null };
    const at = (name: string) => posix.join(node.confDir, name);
    const collected = await this.collectJournal(server, target, at(IP_MANAGER_JOURNAL));
    const changed = digest !== node.appliedDigest || !(await executor.exists(target, at(KEEPALIVED_CONF)));
    let reloaded = false;
    if (changed) {
      try {
        await executor.mkdir(target, node.confDir, { mode: 0o755 });
        await executor.writeFile(target, at(IP_MANAGER_ENV), env, { mode: 0o600 });
        await executor.writeFile(target, at(IP_MANAGER_SCRIPT), script, { mode: 0o755 });
        await executor.writeFile(target, at(IP_MANAGER_STATE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
        const staging = at(`${KEEPALIVED_CONF}.new`);
        await executor.writeFile(target, staging, conf, { mode: 0o644 });
        const check = await executor.run(target, ['keepalived', '-t', '-f', staging], { timeoutMs: 15_000 });
        const problems = keepalivedCheckProblems(check.exitCode, check.stderr);
        // keepalived -t passes a config whose notify script is missing: the engine's own check.
        const runnable = await executor.run(target, ['test', '-x', at(IP_MANAGER_SCRIPT)]);
        if (runnable.exitCode !== 0) problems.push(`notify script ${at(IP_MANAGER_SCRIPT)} is not executable`);
        if (problems.length > 0) {
          await executor.remove(target, staging).catch(() => undefined);
          throw new DomainError('KEEPALIVED_CONFIG_REFUSED', `keepalived refused the configuration for ${server.hostname}; the running one is kept: ${problems.join('; ')}`, 422, { server: server.hostname, problems });
        }
        await executor.writeFile(target, at(KEEPALIVED_CONF), conf, { mode: 0o644 });
        await executor.remove(target, staging);
        reloaded = await this.reload(server, target, node);
        await this.dataSource.getRepository(FailoverNode).update({ id: node.id }, { appliedDigest: digest, appliedAt: new Date(), lastError: null });
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        await this.dataSource.getRepository(FailoverNode).update({ id: node.id }, { lastError: message.slice(0, 1024) });
        throw error;
      }
    }
    const warnings: string[] = [];
    const nonlocal = await executor.run(target, ['sysctl', '-n', 'net.ipv4.ip_nonlocal_bind']);
    if (nonlocal.stdout.trim() !== '1') {
      warnings.push(`net.ipv4.ip_nonlocal_bind is not 1 on ${server.hostname}: nginx cannot listen on the peers' floating IPs before they move here (set it in /etc/sysctl.d)`);
    }
    this.logger.log({ msg: `keepalived of ${server.hostname}: ${changed ? (reloaded ? 'applied and reloaded' : 'applied') : 'unchanged'}`, groups: groups.map((g) => g.name), collected, warnings });
    return { server: server.hostname, changed, reloaded, groups: groups.map((g) => g.name), collected, warnings };
  }

  /** The configuration and ip-manager state of one node, from the catalog. */
  async render(node: FailoverNode, server: Server): Promise<{ conf: string; state: NodeState; groups: NodeState['groups'] }> {
    const [floating, nodes] = await Promise.all([
      this.dataSource.getRepository(ServerIp).find({ where: { kind: 'floating' }, order: { id: 'ASC' } }),
      this.dataSource.getRepository(FailoverNode).find({ relations: { server: true }, order: { serverId: 'ASC' } }),
    ]);
    const { groups, problems } = failoverGroups(floating);
    if (problems.length > 0) throw new DomainError('FAILOVER_GROUPS_INVALID', `The floating IPs do not make valid failover groups: ${problems.join('; ')}`, 409, { problems });
    const peers = nodes.filter((n) => n.serverId !== server.id).map((n) => n.server!.privateIp).filter((ip): ip is string => !!ip);
    // Below the owner's 150; each non-owner a step lower by its rank, so two peers never tie for a group.
    const rank = nodes.findIndex((n) => n.serverId === server.id);
    const conf = renderKeepalived({
      serverId: server.id,
      hostname: server.hostname,
      interface: node.interface,
      privateIp: server.privateIp ?? '',
      peers,
      groups,
      notifyScript: posix.join(node.confDir, IP_MANAGER_SCRIPT),
      peerPriority: 100 - Math.max(0, rank),
    });
    const stateGroups = groups.map((g) => ({ name: g.name, ownerServerId: g.ownerServerId, ips: [...g.ips] }));
    return { conf, state: { version: 1, serverId: server.id, hostname: server.hostname, interface: node.interface, groups: stateGroups }, groups: stateGroups };
  }

  private script(node: FailoverNode): string {
    return [
      '#!/bin/sh',
      '# Written by the provisioning engine: keepalived notify script (<group> <MASTER|BACKUP|FAULT|STOP>). Do not edit.',
      `[ -r ${quoteArg(posix.join(node.confDir, IP_MANAGER_ENV))} ] && . ${quoteArg(posix.join(node.confDir, IP_MANAGER_ENV))}`,
      // keepalived drops a notify script's output: ip-manager's JSON lines go to its log beside the journal.
      // Its own session (setsid -f): a stopping keepalived kills its scripts, and the STOP run must outlive it to release the IPs.
      `exec setsid -f ${this.command.map(quoteArg).join(' ')} --state ${quoteArg(posix.join(node.confDir, IP_MANAGER_STATE))} "$@" >> ${quoteArg(posix.join(node.confDir, IP_MANAGER_LOG))} 2>&1`,
      '',
    ].join('\n');
  }

  private async reload(server: Server, target: ServerRoots, node: FailoverNode): Promise<boolean> {
    if (!node.pidFile) return false;
    const executor = this.access.executorFor(server);
    const pid = await executor.run(target, ['cat', node.pidFile]);
    const text = pid.stdout.trim();
    if (pid.exitCode !== 0 || !/^\d+$/.test(text)) return false;
    const hup = await executor.run(target, ['kill', '-HUP', text]);
    return hup.exitCode === 0;
  }

  /** A node's journal left by runs that could not reach the catalog: recorded, then removed. */
  private async collectJournal(server: Server, target: ServerRoots, journal: string): Promise<number> {
    const executor = this.access.executorFor(server);
    const taken = `${journal}.engine`;
    const moved = await executor.run(target, ['mv', '-f', journal, taken]);
    if (moved.exitCode !== 0) return 0;
    const records = (await executor.readFile(target, taken))
      .toString()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as IpRecord);
    await recordIpActions(this.dataSource, records);
    await executor.remove(target, taken);
    return records.length;
  }
}

function catalogUrl(config: EngineConfig): string {
  const c = config.catalog;
  if (c.kind === 'sqlite') return `sqlite:${c.path}`;
  return `mysql://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${c.host}:${c.port}/${encodeURIComponent(c.database)}`;
}
