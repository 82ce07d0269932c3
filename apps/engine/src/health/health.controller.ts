import { Controller, Get, Inject } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { Public } from '@app/auth';
import { CatalogStatusService } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';

@ApiTags('operations')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly typeorm: TypeOrmHealthIndicator,
    private readonly catalog: CatalogStatusService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** Readiness: the catalog answers and every migration this code knows has run. */
  @Get()
  @HealthCheck()
  @ApiOperation({ summary: 'Readiness: catalog reachable, migrations applied (503 otherwise)' })
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
