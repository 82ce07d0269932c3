import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ApiTokensService } from '@app/auth';
import { AuditEventRepository, ServerRepository } from '@app/catalog';
import { buildSampleRepository, CodeGroupsService } from '@app/codebases';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { rootsOf } from '@app/hosts';
import { LOCAL_SERVER_HOSTNAME, localServer } from './local-server.js';

export const EMBEDDED_ADMIN_TOKEN_NAME = 'embedded-admin';

/**
 * First-run setup of the single-machine default: the same engine as in
 * production, with this machine as its only server (local executor).
 */
@Injectable()
export class EmbeddedSetupService {
  private readonly logger = new Logger('Embedded');

  constructor(
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
    private readonly servers: ServerRepository,
    private readonly audit: AuditEventRepository,
    private readonly tokens: ApiTokensService,
    private readonly codeGroups: CodeGroupsService,
  ) {}

  /** Seeds the local server when the inventory is empty, and creates its roots. */
  async ensureLocalServer(): Promise<void> {
    const local = localServer(this.config.varDir);
    for (const dir of rootsOf(local)) mkdirSync(dir, { recursive: true });
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
