import { Global, Module } from '@nestjs/common';
import { SagaJournalRepository } from './saga-journal.repository.js';
import { SagaRunner } from './saga-runner.service.js';

/** The saga runner and its journal; domain libs define sagas and run them from their job handlers. */
@Global()
@Module({
  providers: [SagaJournalRepository, SagaRunner],
  exports: [SagaJournalRepository, SagaRunner],
})
export class SagaModule {}
