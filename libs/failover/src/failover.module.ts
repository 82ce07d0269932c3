import { Module } from '@nestjs/common';
import { KeepalivedApplyService } from './keepalived-apply.service.js';

/** Floating IP failover: keepalived's configuration per dispatcher, and what ip-manager records. */
@Module({
  providers: [KeepalivedApplyService],
  exports: [KeepalivedApplyService],
})
export class FailoverModule {}
