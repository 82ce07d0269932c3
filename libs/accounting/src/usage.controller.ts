import { Controller, Get, Param, ParseIntPipe, Query } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { Between, DataSource } from 'typeorm';
import { RequireScope } from '@app/auth';
import { Install, SiteUsage } from '@app/catalog';
import { DomainError, NotFoundError } from '@app/common';
import { UsageQuery, UsageView } from './dto/usage.dto.js';

const DAY_MS = 24 * 60 * 60_000;
const MAX_DAYS = 366;

/** Site accounting read back: an install's hits and bytes per day and hostname. */
@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs')
export class UsageController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get(':id/usage')
  @RequireScope('support')
  @ApiOperation({ summary: "The install's hits and bytes per UTC day and hostname, counted from the dispatchers' access logs by the SiteAccounting task (every 5 minutes)" })
  @ApiResponse({ status: 200, type: UsageView })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED, USAGE_RANGE: from after to, or more than 366 days' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  async usage(@Param('id', ParseIntPipe) id: number, @Query() query: UsageQuery): Promise<UsageView> {
    const to = query.to ?? new Date().toISOString().slice(0, 10);
    const from = query.from ?? new Date(Date.parse(`${to}T00:00:00Z`) - 30 * DAY_MS).toISOString().slice(0, 10);
    const span = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS;
    if (!Number.isFinite(span) || span < 0 || span >= MAX_DAYS) {
      throw new DomainError('USAGE_RANGE', `from (${from}) must be on or before to (${to}), at most ${MAX_DAYS} days apart`, 400, { from, to });
    }
    if (!(await this.dataSource.getRepository(Install).existsBy({ id }))) throw new NotFoundError('install', id);
    const rows = await this.dataSource.getRepository(SiteUsage).find({ where: { installId: id, day: Between(from, to) }, order: { day: 'ASC', hostname: 'ASC' } });
    const days = rows.map((r) => ({ day: r.day, hostname: r.hostname, hits: Number(r.hits), bytes: Number(r.bytes) }));
    return {
      installId: id,
      from,
      to,
      days,
      totals: { hits: days.reduce((n, d) => n + d.hits, 0), bytes: days.reduce((n, d) => n + d.bytes, 0) },
    };
  }
}
