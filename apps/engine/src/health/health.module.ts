import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { FailoverModule } from '@app/failover';
import { FailingDispatchersRepository } from './failing-dispatchers.repository.js';
import { HealthController } from './health.controller.js';
import { ReadinessService } from './readiness.service.js';
import { WaitingInstallsRepository } from './waiting-installs.repository.js';

@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'json' }), FailoverModule],
  controllers: [HealthController],
  providers: [ReadinessService, WaitingInstallsRepository, FailingDispatchersRepository],
})
export class HealthModule {}
