import { Controller, Get, Headers, Inject, Res } from '@nestjs/common';
import { FailoverStatus } from '@app/failover';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator, type HealthCheckResult } from '@nestjs/terminus';
import { ApiTokensService, Public } from '@app/auth';
import { CatalogStatusService } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { JobRepository } from '@app/queue';
import { IpPoolLowWater } from '@app/site-health';
import { TaskStatus } from '@app/tasks';
import { FailingDispatchersRepository } from './failing-dispatchers.repository.js';
import { ReadinessService } from './readiness.service.js';
import { WaitingInstallsRepository } from './waiting-installs.repository.js';

/** How many waiting installs the details name (the count is always whole). */
const WAITING_SAMPLE = 20;

@ApiTags('operations')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly typeorm: TypeOrmHealthIndicator,
    private readonly catalog: CatalogStatusService,
    private readonly jobs: JobRepository,
    private readonly waiting: WaitingInstallsRepository,
    private readonly dispatchers: FailingDispatchersRepository,
    private readonly readiness: ReadinessService,
    private readonly taskStatus: TaskStatus,
    private readonly ipPools: IpPoolLowWater,
    private readonly failover: FailoverStatus,
    private readonly tokens: ApiTokensService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /**
   * Readiness. Without a token only ready or not (a probe learns nothing
   * else, and costs at most a catalog ping); with a token of the `support`
   * or `admin` scope, every check in detail.
   */
  @Get()
  @HealthCheck()
  @ApiBearerAuth()
  @ApiOperation({
    summary: 'Readiness: catalog reachable, migrations applied (503 otherwise)',
    description:
      'Without a token: 200 {"status":"ok"} or 503 {"status":"error"}, nothing more. With a support or admin token: each check in detail ' +
      '(catalog, migrations, queue, installs, nginx, recurring tasks, IP pools, floating IP holders, engine roles), degraded (still 200) while jobs need attention, orders wait for a code group, a dispatcher\'s last nginx rebuild failed, a recurring task has not succeeded within twice its interval, a server\'s dedicated or floating IPs are below IP_POOL_LOW_WATER, or a floating IP is away from its owner (failover in effect) or a keepalived apply failed; a bad token is 401.',
  })
  async check(
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) res: { status(code: number): unknown },
  ): Promise<HealthCheckResult | { status: 'ok' | 'error' }> {
    if (authorization === undefined) {
      const ready = await this.readiness.ready();
      res.status(ready ? 200 : 503);
      return { status: ready ? 'ok' : 'error' };
    }
    await this.tokens.authorize(authorization, 'support');
    return this.details();
  }

  private details(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.typeorm.pingCheck('catalog').withTimeout(3000),
      () =>
        this.indicators
          .check('migrations')
          .attempt(async () => {
            const pending = await this.catalog.pendingMigrations();
            if (pending.length > 0) throw new Error(`pending migrations: ${pending.join(', ')}`);
            return { driver: this.catalog.driver };
          })
          .withTimeout(3000),
      async () => {
        // Degraded, not down: the engine serves, but an operator has work waiting.
        const queue = this.indicators.check('queue');
        let stuck: Awaited<ReturnType<JobRepository['needingAttention']>>;
        try {
          stuck = await this.jobs.needingAttention();
        } catch (error) {
          return queue.down({ message: error instanceof Error ? error.message : String(error) });
        }
        return stuck.length === 0
          ? queue.up({ needsAttention: 0 })
          : queue.degraded({ needsAttention: stuck.length, jobs: stuck.map((j) => `${j.id} (${j.kind})`).join(', ') });
      },
      async () => {
        // Degraded while accepted orders wait for a code group with room: add a group or raise a limit.
        const installs = this.indicators.check('installs');
        let waiting: Awaited<ReturnType<WaitingInstallsRepository['summary']>>;
        try {
          waiting = await this.waiting.summary(WAITING_SAMPLE);
        } catch (error) {
          return installs.down({ message: error instanceof Error ? error.message : String(error) });
        }
        return waiting.count === 0
          ? installs.up({ waitingForCodeGroup: 0 })
          : installs.degraded({
              waitingForCodeGroup: waiting.count,
              installs: waiting.sample.map((i) => `${i.id} (${i.license}): ${i.statusReason}`).join('; '),
            });
      },
      async () => {
        // Degraded while a dispatcher's nginx does not load what the catalog has (not running, a refused config): its new sites are not live.
        const nginx = this.indicators.check('nginx');
        let failing: Awaited<ReturnType<FailingDispatchersRepository['list']>>;
        try {
          failing = await this.dispatchers.list();
        } catch (error) {
          return nginx.down({ message: error instanceof Error ? error.message : String(error) });
        }
        return failing.length === 0
          ? nginx.up({ failingDispatchers: 0 })
          : nginx.degraded({ failingDispatchers: failing.length, dispatchers: failing.map((d) => `${d.hostname}: ${d.error}`).join('; ') });
      },
      async () => {
        // Degraded while a recurring task has not succeeded within twice its interval (hung, failing every run, or no engine with the cron role).
        const tasks = this.indicators.check('tasks');
        let states: Awaited<ReturnType<TaskStatus['list']>>;
        try {
          states = await this.taskStatus.list();
        } catch (error) {
          return tasks.down({ message: error instanceof Error ? error.message : String(error) });
        }
        const stale = states.filter((t) => t.stale);
        const since = (t: (typeof states)[number]) => (t.lastSuccessAt ? `last success ${t.lastSuccessAt.toISOString()}` : 'no success yet');
        return stale.length === 0
          ? tasks.up({ tasks: states.length, stale: 0 })
          : tasks.degraded({ tasks: states.length, stale: stale.length, staleTasks: stale.map((t) => `${t.name} (${t.schedule}): ${since(t)}${t.lastError ? `; last error: ${t.lastError}` : ''}`).join('; ') });
      },
      async () => {
        // Degraded while a server's dedicated or floating IPs are below IP_POOL_LOW_WATER: paid orders will run out.
        const pools = this.indicators.check('ipPools');
        let low: Awaited<ReturnType<IpPoolLowWater['pools']>>;
        try {
          low = (await this.ipPools.pools()).filter((p) => p.low);
        } catch (error) {
          return pools.down({ message: error instanceof Error ? error.message : String(error) });
        }
        return low.length === 0
          ? pools.up({ low: 0, lowWater: this.config.ipPoolLowWater })
          : pools.degraded({ low: low.length, lowWater: this.config.ipPoolLowWater, pools: low.map((p) => `${p.server} ${p.kind}: ${p.free} free of ${p.total}`).join('; ') });
      },
      async () => {
        // Which node holds which floating IP; degraded while one is away from its owner (a failover in effect), held by nobody, or a keepalived apply failed.
        const floating = this.indicators.check('floatingIps');
        let holders: Awaited<ReturnType<FailoverStatus['holders']>>;
        let failing: Awaited<ReturnType<FailoverStatus['failingNodes']>>;
        try {
          [holders, failing] = await Promise.all([this.failover.holders(), this.failover.failingNodes()]);
        } catch (error) {
          return floating.down({ message: error instanceof Error ? error.message : String(error) });
        }
        const held = holders.map((h) => `${h.ip} (${h.group}, ${h.owner}): ${h.holder ?? 'nobody'}`).join('; ');
        const away = holders.filter((h) => h.holder !== h.owner);
        return away.length === 0 && failing.length === 0
          ? floating.up({ floatingIps: holders.length, holders: held })
          : floating.degraded({ floatingIps: holders.length, awayFromOwner: away.length, holders: held, keepalived: failing.map((f) => `${f.hostname}: ${f.error}`).join('; ') });
      },
      () => this.indicators.check('engine').up({ roles: this.config.roles.join(',') }),
    ]);
  }

  /** Liveness: the process answers HTTP. */
  @Get('live')
  @ApiOperation({ summary: 'Liveness: the process is up' })
  live() {
    return { status: 'ok' };
  }
}
