import { Body, Controller, Get, Param, ParseIntPipe, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { RollbackDto, RolloutPlanView, RolloutQueuedView, RolloutReportView, StartRolloutDto } from './dto/rollout.dto.js';
import { RolloutsService } from './rollouts.service.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });
type Status = { status(code: number): unknown };

/** A code group rolled to a revision, canary first, with a report per install (the seed's update_shared_code_installs.php). */
@ApiTags('code groups')
@ApiBearerAuth()
@ApiExtraModels(RolloutPlanView)
@Controller('v1/code-groups/:id')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post('updates')
  @RequireScope('admin')
  @ApiOperation({ summary: "Roll the group's live installs to a revision (a new release; canary first, then the others); dryRun answers the plan (200) and changes nothing" })
  @ApiResponse({ status: 202, type: RolloutQueuedView })
  @ApiResponse({ status: 200, type: RolloutPlanView, description: 'dryRun' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED, CANARY_NOT_IN_GROUP: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  @ApiResponse({ status: 409, description: 'CODE_GROUP_NOT_READY, ROLLOUT_RUNNING, NO_LIVE_INSTALLS, ALREADY_AT_REVISION, REVISION_REFUSED (dry run): nothing changed' })
  async start(@Param('id', ParseIntPipe) id: number, @Body() body: StartRolloutDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Status): Promise<RolloutQueuedView | RolloutPlanView> {
    const result = await this.rollouts.start(id, body, by(req));
    res.status('dryRun' in result ? 200 : 202);
    return result;
  }

  @Get('updates')
  @RequireScope('support')
  @ApiOperation({ summary: "The group's rollouts and rollbacks, newest first (counts per state, no items)" })
  @ApiResponse({ status: 200, type: [RolloutReportView] })
  list(@Param('id', ParseIntPipe) id: number): Promise<RolloutReportView[]> {
    return this.rollouts.list(id);
  }

  @Get('updates/:updateId')
  @RequireScope('support')
  @ApiOperation({ summary: 'The report: one line per install (switched, SQL updates applied and their time, caches, probe, or the error with file, line and statement)' })
  @ApiResponse({ status: 200, type: RolloutReportView })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  report(@Param('id', ParseIntPipe) id: number, @Param('updateId', ParseIntPipe) updateId: number): Promise<RolloutReportView> {
    return this.rollouts.report(id, updateId);
  }

  @Post('updates/:updateId/retry-failed')
  @RequireScope('admin')
  @ApiOperation({ summary: "Queue a failed rollout's failed installs again (after a fix)" })
  @ApiResponse({ status: 202, type: RolloutQueuedView })
  @ApiResponse({ status: 409, description: 'NOTHING_TO_RETRY, ROLLOUT_RUNNING' })
  async retry(@Param('id', ParseIntPipe) id: number, @Param('updateId', ParseIntPipe) updateId: number, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Status): Promise<RolloutQueuedView> {
    res.status(202);
    return this.rollouts.retryFailed(id, updateId, by(req));
  }

  @Post('rollback')
  @RequireScope('admin')
  @ApiOperation({ summary: 'Switch every live install back to the release before the last rollout (kept on every server: instant); SQL updates stay applied' })
  @ApiResponse({ status: 202, type: RolloutQueuedView })
  @ApiResponse({ status: 200, type: RolloutPlanView, description: 'dryRun' })
  @ApiResponse({ status: 409, description: 'NO_ROLLBACK, ROLLOUT_RUNNING, CODE_GROUP_NOT_READY' })
  async rollback(@Param('id', ParseIntPipe) id: number, @Body() body: RollbackDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Status): Promise<RolloutQueuedView | RolloutPlanView> {
    const result = await this.rollouts.rollback(id, body, by(req));
    res.status('dryRun' in result ? 200 : 202);
    return result;
  }
}
