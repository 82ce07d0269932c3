import { Controller, Delete, Get, HttpCode, Param, ParseBoolPipe, ParseIntPipe, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { FtpResetPlanner, FtpResetService } from './ftp-reset.service.js';
import { RemoveInstallService } from './remove-install.service.js';
import { RestoreInstallService } from './restore-install.service.js';
import { FtpResetView, RemovalPlanView, RemovalView, RestoreView } from './dto/removal.dto.js';

type Reply = { status(code: number): unknown };
const actor = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

/** Issue 17: remove an install (backup, saga, sweep), restore it from its backup, reset its FTP permissions. */
@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs/:id')
export class RemovalController {
  constructor(
    private readonly removals: RemoveInstallService,
    private readonly restores: RestoreInstallService,
    private readonly ftp: FtpResetService,
    private readonly planner: FtpResetPlanner,
  ) {}

  @Delete()
  @RequireScope('support')
  @ApiOperation({ summary: 'Remove a live or failed install: shop offline, backup kept BACKUP_GRACE_DAYS, then vhosts, crons, mounts, FTP, PHP users, copies, home, database, DNS, IPs, names, certificates (only what it made), then a verification sweep (a saga job). dryRun answers the plan (200) and changes nothing' })
  @ApiQuery({ name: 'dryRun', required: false, type: Boolean })
  @ApiResponse({ status: 202, type: RemovalPlanView })
  @ApiResponse({ status: 200, type: RemovalPlanView, description: 'dryRun' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED: a bad id or dryRun' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  @ApiResponse({ status: 409, description: 'INSTALL_NOT_REMOVABLE (preparing, building, removing, removed), INSTALL_BUSY, INSTALL_SERVER_DOWN: nothing changed' })
  async remove(@Param('id', ParseIntPipe) id: number, @Query('dryRun', new ParseBoolPipe({ optional: true })) dryRun: boolean | undefined, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Reply): Promise<RemovalPlanView> {
    const plan = await this.removals.remove(id, { dryRun: dryRun ?? false }, actor(req));
    res.status(plan.dryRun ? 200 : 202);
    return plan;
  }

  @Get('removal')
  @RequireScope('support')
  @ApiOperation({ summary: "The install's backups (state, files, expiry) and its last removal's verification sweep" })
  @ApiResponse({ status: 200, type: RemovalView })
  removal(@Param('id', ParseIntPipe) id: number): Promise<RemovalView> {
    return this.removals.view(id);
  }

  @Post('restore')
  @RequireScope('support')
  @ApiOperation({ summary: 'Bring a removed install back from its kept backup: names re-claimed, IPs re-allocated, home, database and certificates restored, built live again (a saga job)' })
  @ApiQuery({ name: 'dryRun', required: false, type: Boolean })
  @ApiResponse({ status: 202, type: RestoreView })
  @ApiResponse({ status: 409, description: 'INSTALL_NOT_REMOVED, NO_BACKUP, HOSTNAME_TAKEN, CODE_GROUP_UNAVAILABLE, IP_POOL_EXHAUSTED, INSTALL_BUSY: nothing changed' })
  async restore(@Param('id', ParseIntPipe) id: number, @Query('dryRun', new ParseBoolPipe({ optional: true })) dryRun: boolean | undefined, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Reply): Promise<RestoreView> {
    const view = await this.restores.restore(id, { dryRun: dryRun ?? false }, actor(req));
    res.status(view.dryRun ? 200 : 202);
    return view;
  }

  @Post('ftp/reset')
  @HttpCode(200)
  @RequireScope('support')
  @ApiOperation({ summary: "Owners and modes of the FTP tree and the writable directories back to what the manifest says; answers what changed (path: before -> after). A job on the install's resource key; waited for up to 60 s" })
  @ApiQuery({ name: 'dryRun', required: false, type: Boolean })
  @ApiResponse({ status: 200, type: FtpResetView })
  @ApiResponse({ status: 202, type: FtpResetView, description: 'still running: follow the job' })
  @ApiResponse({ status: 409, description: 'INSTALL_NOT_LIVE, INSTALL_BUSY' })
  async ftpReset(@Param('id', ParseIntPipe) id: number, @Query('dryRun', new ParseBoolPipe({ optional: true })) dryRun: boolean | undefined, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Reply): Promise<FtpResetView> {
    const view = await this.ftp.reset(id, { dryRun: dryRun ?? false, waitMs: 60_000 }, actor(req), (installId) => this.planner.plan(installId));
    res.status(view.state === 'queued' ? 202 : 200);
    return view;
  }
}
