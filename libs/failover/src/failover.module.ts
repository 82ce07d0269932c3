import { Module } from '@nestjs/common';
import { FailoverMetrics } from './failover-metrics.js';
import { FailoverStatus } from './failover-status.service.js';
import { KeepalivedApplyService } from './keepalived-apply.service.js';

/** Floating IP failover: keepalived's configuration per dispatcher, and what ip-manager records. */
@Module({
  providers: [KeepalivedApplyService, FailoverMetrics, FailoverStatus],
  exports: [KeepalivedApplyService, FailoverStatus],
})
export class FailoverModule {}
