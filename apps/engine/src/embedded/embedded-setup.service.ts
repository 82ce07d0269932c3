import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { AuditEventRepository, DispatcherConfig, ServerRepository, type Server } from '@app/catalog';
import { buildSampleRepository, CodeGroupsService } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { rootsOf } from '@app/hosts';
import { NginxRebuilds } from '@app/webserver';
import { EmbeddedWeb, type EmbeddedWebState } from './embedded-web.js';
import { LOCAL_SERVER_HOSTNAME, LOCAL_SERVER_PRIVATE_IP, localServer, localTenantDatabases } from './local-server.js';

export const EMBEDDED_ADMIN_TOKEN_NAME = 'embedded-admin';

/**
 * First-run setup of the single-machine default: the same engine as in
 * production, with this machine as its only server (local executor).
 */
@Injectable()
export class EmbeddedSetupService implements OnApplicationShutdown {
  private readonly logger = new Logger('Embedded');
  private web: EmbeddedWeb | null = null;

  constructor(
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    private readonly servers: ServerRepository,
    private readonly audit: AuditEventRepository,
    private readonly tokens: ApiTokensService,
    private readonly codeGroups: CodeGroupsService,
    private readonly rebuilds: NginxRebuilds,
    private readonly dataSource: DataSource,
  ) {}

  /** Seeds the local server when the inventory is empty, and creates its roots. */
  async ensureLocalServer(): Promise<void> {
    const local = localServer(this.config.varDir);
    for (const dir of rootsOf(local)) mkdirSync(dir, { recursive: true });
    const seeded = await this.servers.findByHostname(LOCAL_SERVER_HOSTNAME);
    if (seeded?.transport === 'local' && seeded.dbOptionsFile === null) {
      // Seeded by an earlier version: say what its tenant databases are, and give its PHP its own address.
      await this.servers.update(seeded.id, { dbOptionsFile: localTenantDatabases(this.config.varDir), privateIp: seeded.privateIp === '127.0.0.1' ? LOCAL_SERVER_PRIVATE_IP : seeded.privateIp });
    }
    if ((await this.servers.count()) > 0) return;
    const server = await this.servers.insert(local);
    // Its IP pool: loopback addresses (every 127.x.y.z is this machine's on Linux).
    await this.servers.addIps(server.id, ['127.0.0.1'], 'shared', null);
    await this.servers.addIps(server.id, Array.from({ length: 50 }, (_, i) => `127.0.10.${i + 1}`), 'dedicated', null);
    await this.audit.record({
      actor: 'engine',
      via: 'engine',
      action: 'server.create',
      targetType: 'server',
      targetId: server.id,
      details: { hostname: LOCAL_SERVER_HOSTNAME, transport: 'local', reason: 'embedded default' },
    });
    this.logger.log(`seeded the local server (roots under ${this.config.varDir}/hosts/local)`);
  }

  /**
   * Seeds a free and a paid code group from the sample shop codebase (built
   * as a git repository under var/) when there is none, so orders can be
   * provisioned at once; the worker clones them like any other group.
   */
  async ensureSampleCodeGroups(): Promise<void> {
    if ((await this.codeGroups.list()).length > 0) return;
    const master = await this.servers.findByHostname(LOCAL_SERVER_HOSTNAME);
    if (!master) return;
    const dir = join(this.config.varDir, 'sample-codebase');
    // Left by a first start that stopped before recording the groups.
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    const repo = await buildSampleRepository(dir);
    for (const tier of ['free', 'paid'] as const) {
      await this.codeGroups.create(
        { name: `sample-${tier}`, tier, repoUrl: repo.path, revision: 'main', masterServerId: master.id, installLimit: 1000 },
        { actor: 'engine', via: 'engine' },
      );
    }
    this.logger.log(`seeded code groups sample-free and sample-paid from ${dir}`);
  }

  /**
   * Serves the local server's shops with a private nginx and php-fpm, when
   * they are installed: nginx on the port the server row has (or a free high
   * port, recorded, and the shops' files rebuilt for it first).
   */
  async serveShops(): Promise<EmbeddedWebState> {
    const missing = EmbeddedWeb.missing();
    if (missing) return { serving: false, reason: missing };
    let server = await this.servers.findByHostname(LOCAL_SERVER_HOSTNAME);
    if (!server || server.transport !== 'local') return { serving: false, reason: 'the inventory has no local server of the embedded default' };
    const port = await EmbeddedWeb.freePort(server.httpPort);
    if (port !== server.httpPort) {
      server = (await this.servers.update(server.id, { httpPort: port }))!;
      await this.rebuilt(server);
    }
    const web = new EmbeddedWeb({ dir: join(this.config.varDir, 'hosts', 'local', 'web'), nginxConfDir: server.nginxConfDir, nginxPidFile: server.nginxPidFile!, phpHost: server.privateIp ?? '127.0.0.1' });
    try {
      await web.start();
    } catch (error) {
      await web.stop();
      return { serving: false, reason: error instanceof Error ? error.message : String(error) };
    }
    this.web = web;
    this.logger.log(`serving the local server's shops with a private nginx on port ${port}`);
    return { serving: true, port };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.web?.stop();
  }

  /** Asks a worker for the dispatcher's rebuild and waits until it is applied (nginx, not running yet, loads it at start). */
  private async rebuilt(server: Server): Promise<void> {
    await this.rebuilds.request(server.id);
    const configs = this.dataSource.getRepository(DispatcherConfig);
    const { wantedGeneration } = await configs.findOneByOrFail({ serverId: server.id });
    for (let i = 0; i < 600; i++) {
      const row = await configs.findOneByOrFail({ serverId: server.id });
      if (row.appliedGeneration >= wantedGeneration) return;
      if (row.lastError && row.pending === false && row.appliedGeneration < wantedGeneration && i > 50) throw new Error(`the local server's nginx files could not be rebuilt: ${row.lastError}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the local server\'s nginx files were not rebuilt within a minute (is a worker running?)');
  }

  /**
   * A fresh admin token for this run. The one the previous start issued is
   * revoked: the engine marks the tokens it issues itself (`engine_issued`),
   * so a token created through the API or a snippet under the same name is
   * never touched.
   */
  async freshAdminToken(): Promise<string> {
    const { token } = await this.tokens.rotate(EMBEDDED_ADMIN_TOKEN_NAME, ['admin'], {
      actor: 'engine',
      via: 'engine',
    });
    return token;
  }
}
