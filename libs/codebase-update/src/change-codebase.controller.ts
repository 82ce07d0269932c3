import { Body, Controller, Param, ParseIntPipe, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { ChangeCodebaseService } from './change-codebase.service.js';
import { ChangeCodebaseDto, ChangeCodebaseView } from './dto/change-codebase.dto.js';

/** An install moved to another code group of the same revision (the seed's "Change codebase"). */
@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs/:id')
export class ChangeCodebaseController {
  constructor(private readonly changes: ChangeCodebaseService) {}

  @Post('codebase')
  @RequireScope('admin')
  @ApiOperation({ summary: "Move the install to another code group of the same revision: its .code link re-pointed on every server of its home, its slot moved, its pools and vhosts rebuilt, probed; undone on failure (a saga job). dryRun answers the checks' outcome (200) and queues nothing" })
  @ApiResponse({ status: 202, type: ChangeCodebaseView })
  @ApiResponse({ status: 200, type: ChangeCodebaseView, description: 'dryRun' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install or the group' })
  @ApiResponse({
    status: 409,
    description: 'CODEBASE_REVISION_DIFFERS, CODEBASE_SAME_GROUP, CODE_GROUP_NOT_READY, CODE_GROUP_LOCKED, CODE_GROUP_FULL, CODE_GROUP_TIER_DIFFERS, INSTALL_NOT_LIVE, CODEBASE_RELEASE_MISSING, INSTALL_SERVER_DOWN, ROLLOUT_RUNNING, CODEBASE_CHANGE_RUNNING: nothing changed',
  })
  async change(@Param('id', ParseIntPipe) id: number, @Body() body: ChangeCodebaseDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: { status(code: number): unknown }): Promise<ChangeCodebaseView> {
    const result = await this.changes.change(id, body, { actor: `token:${req.principal.name}`, via: 'api' });
    res.status(result.dryRun ? 200 : 202);
    return result;
  }
}
