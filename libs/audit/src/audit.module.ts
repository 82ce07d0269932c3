import { Module, type DynamicModule } from '@nestjs/common';
import { AuditLogController } from './audit-log.controller.js';
import { AuditLogRepository } from './audit-log.repository.js';
import { AuditLogService } from './audit-log.service.js';

/** The audit log readable: GET /v1/audit (http) and the audit:list snippet. Writing stays AuditEventRepository's (catalog). */
@Module({})
export class AuditModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: AuditModule,
      controllers: options.http ? [AuditLogController] : [],
      providers: [AuditLogRepository, AuditLogService],
      exports: [AuditLogService],
    };
  }
}
