import { Body, Controller, Param, ParseIntPipe, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { DowngradeService } from './downgrade.service.js';
import { DryRunDto, SiteOperationView } from './dto/site-ops.dto.js';

/** The seed's "Downgrade paid to free" in one call. */
@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs/:id')
export class DowngradeController {
  constructor(private readonly downgrades: DowngradeService) {}

  @Post('downgrade')
  @RequireScope('support')
  @ApiOperation({ summary: 'Downgrade a paid install to free: a free code group of the same revision, links re-pointed, one IP kept on the master, license free, bind mounts removed, FTP disabled, DNS to the master only, the other servers\' copies removed, nginx rebuilt, probed; undone on failure (a saga job). dryRun answers the plan (200)' })
  @ApiResponse({ status: 202, type: SiteOperationView })
  @ApiResponse({ status: 200, type: SiteOperationView, description: 'dryRun: the plan, nothing changed' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install' })
  @ApiResponse({ status: 409, description: 'NO_FREE_CODE_GROUP (with the revision), INSTALL_NOT_PAID, INSTALL_NOT_LIVE, TOO_MANY_SITES, INSTALL_HAS_CLOUD_HANDLERS, OPERATION_RUNNING, INSTALL_SERVER_DOWN: nothing changed' })
  async downgrade(@Param('id', ParseIntPipe) id: number, @Body() body: DryRunDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: { status(code: number): unknown }): Promise<SiteOperationView> {
    const view = await this.downgrades.downgrade(id, body ?? {}, { actor: `token:${req.principal.name}`, via: 'api' });
    res.status(view.dryRun ? 200 : 202);
    return view;
  }
}
