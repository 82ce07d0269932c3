import { Body, Controller, Get, Param, ParseIntPipe, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { DatabaseMovePlanView, DatabaseMoveQueuedView, DatabaseMoveReportView, MoveDatabaseDto } from './dto/database-move.dto.js';
import { DatabaseMovesService } from './database-moves.service.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });
type Status = { status(code: number): unknown };

/** Database failover: every install on one database server pointed at another (the seed's move_database), with a report per install. */
@ApiTags('database servers')
@ApiBearerAuth()
@ApiExtraModels(DatabaseMovePlanView)
@Controller('v1/database-servers')
export class DatabaseMovesController {
  constructor(private readonly moves: DatabaseMovesService) {}

  @Post('move')
  @RequireScope('admin')
  @ApiOperation({ summary: "Point every live install whose database is on `from` at `to` (config files on every server, the catalog, caches); dryRun answers every config file's diff (200) and changes nothing" })
  @ApiResponse({ status: 202, type: DatabaseMoveQueuedView })
  @ApiResponse({ status: 200, type: DatabaseMovePlanView, description: 'dryRun' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED, SAME_DATABASE_SERVER: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  @ApiResponse({ status: 409, description: 'DATABASE_MOVE_REFUSED (details.problems: every precondition that fails), NOT_A_DATABASE_SERVER, NOTHING_TO_MOVE, DATABASE_MOVE_RUNNING: nothing changed' })
  async move(@Body() body: MoveDatabaseDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Status): Promise<DatabaseMoveQueuedView | DatabaseMovePlanView> {
    const result = await this.moves.start(body, by(req));
    res.status('dryRun' in result ? 200 : 202);
    return result;
  }

  @Get('moves')
  @RequireScope('support')
  @ApiOperation({ summary: 'Database moves, newest first (counts per state, no items)' })
  @ApiResponse({ status: 200, type: [DatabaseMoveReportView] })
  list(): Promise<DatabaseMoveReportView[]> {
    return this.moves.list();
  }

  @Get('moves/:moveId')
  @RequireScope('support')
  @ApiOperation({ summary: 'The report: one line per install (state, config files written, caches, or the error)' })
  @ApiResponse({ status: 200, type: DatabaseMoveReportView })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  report(@Param('moveId', ParseIntPipe) moveId: number): Promise<DatabaseMoveReportView> {
    return this.moves.report(moveId);
  }
}
