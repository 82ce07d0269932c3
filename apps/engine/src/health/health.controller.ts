import { Controller, Get, Inject } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { Public } from '@app/auth';
import { CatalogStatusService } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { InstallsService } from '@app/installs';
import { JobRepository } from '@app/queue';

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
    private readonly installs: InstallsService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** Readiness: the catalog answers and every migration this code knows has run. */
  @Get()
  @HealthCheck()
  @ApiOperation({
    summary: 'Readiness: catalog reachable, migrations applied (503 otherwise); degraded while jobs need attention or orders wait for a code group',
  })
  check() {
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
        let waiting: Awaited<ReturnType<InstallsService['waiting']>>;
        try {
          waiting = await this.installs.waiting();
        } catch (error) {
          return installs.down({ message: error instanceof Error ? error.message : String(error) });
        }
        return waiting.length === 0
          ? installs.up({ waitingForCodeGroup: 0 })
          : installs.degraded({ waitingForCodeGroup: waiting.length, installs: waiting.slice(0, 20).map((i) => `${i.id} (${i.license}): ${i.statusReason}`).join('; ') });
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
