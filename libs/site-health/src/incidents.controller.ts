import { Controller, Get, Query } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { DataSource, IsNull, Not, type FindOptionsWhere } from 'typeorm';
import { RequireScope } from '@app/auth';
import { SiteIncident } from '@app/catalog';
import { IncidentView, ListIncidentsQuery } from './dto/incidents.dto.js';

export function incidentView(i: SiteIncident): IncidentView {
  return {
    id: i.id,
    installId: i.installId,
    openedAt: i.openedAt.toISOString(),
    closedAt: i.closedAt?.toISOString() ?? null,
    problem: i.problem,
    lastProblem: i.lastProblem,
    failedRounds: i.failedRounds,
    cachesCleared: i.cachesCleared,
    mailedOpened: i.mailedOpened,
    mailedClosed: i.mailedClosed,
  };
}

/** Site health's incidents: sites that failed their probes several rounds in a row, until they answered again. */
@ApiTags('operations')
@ApiBearerAuth()
@Controller('v1/site-incidents')
export class IncidentsController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get()
  @RequireScope('support')
  @ApiOperation({ summary: 'Site incidents, newest first: opened after 3 failed health rounds in a row (caches emptied, operations mailed), closed when the site answers again (mailed)' })
  @ApiResponse({ status: 200, type: [IncidentView] })
  async list(@Query() query: ListIncidentsQuery): Promise<IncidentView[]> {
    return (await listIncidents(this.dataSource, query)).map(incidentView);
  }
}

export function listIncidents(dataSource: DataSource, query: { installId?: number; open?: boolean; limit?: number }): Promise<SiteIncident[]> {
  const where: FindOptionsWhere<SiteIncident> = {};
  if (query.installId !== undefined) where.installId = query.installId;
  if (query.open !== undefined) where.closedAt = query.open ? IsNull() : Not(IsNull());
  return dataSource.getRepository(SiteIncident).find({ where, order: { id: 'DESC' }, take: query.limit ?? 100 });
}
