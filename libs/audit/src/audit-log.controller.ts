import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope } from '@app/auth';
import { AuditLogService } from './audit-log.service.js';
import { AuditPageView, ListAuditQuery } from './dto/list-audit.query.js';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1/audit')
export class AuditLogController {
  constructor(private readonly audit: AuditLogService) {}

  @Get()
  @RequireScope('support')
  @ApiOperation({ summary: 'The audit log, newest first: who changed what (actor, via, action, target, before/after), filtered by install, actor, action and time; keyset paging with beforeId' })
  @ApiResponse({ status: 200, type: AuditPageView })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED: a filter is malformed' })
  list(@Query() query: ListAuditQuery): Promise<AuditPageView> {
    return this.audit.list(query);
  }
}
