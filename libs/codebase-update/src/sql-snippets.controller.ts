import { Body, Controller, Get, Param, ParseIntPipe, Post, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { ApplySqlSnippetDto, SqlSnippetPlanView, SqlSnippetQueuedView, SqlSnippetReportView } from './dto/sql-snippet.dto.js';
import { SqlSnippetsService } from './sql-snippets.service.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

/** One SQL snippet run on chosen installs as each install's own database user (the seed's "Specific snippet updating"). */
@ApiTags('sql snippets')
@ApiBearerAuth()
@ApiExtraModels(SqlSnippetPlanView)
@Controller('v1/sql-snippets')
export class SqlSnippetsController {
  constructor(private readonly snippets: SqlSnippetsService) {}

  @Post()
  @RequireScope('admin')
  @ApiOperation({ summary: 'Queue a snippet on installs (or every live install of a group); dryRun answers the plan (200) and changes nothing' })
  @ApiResponse({ status: 202, type: SqlSnippetQueuedView })
  @ApiResponse({ status: 200, type: SqlSnippetPlanView, description: 'dryRun' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED, SNIPPET_EMPTY, SNIPPET_TOO_LARGE, SNIPPET_REFUSED: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: an install or the group does not exist; nothing changed' })
  @ApiResponse({ status: 409, description: 'SNIPPET_ALREADY_APPLIED (without force), INSTALL_NOT_LIVE, NO_LIVE_INSTALLS, CODE_GROUP_NOT_READY: nothing changed' })
  async apply(
    @Body() body: ApplySqlSnippetDto,
    @Req() req: { principal: Principal },
    @Res({ passthrough: true }) res: { status(code: number): unknown },
  ): Promise<SqlSnippetQueuedView | SqlSnippetPlanView> {
    const result = await this.snippets.apply(body, by(req));
    res.status('dryRun' in result ? 200 : 202);
    return result;
  }

  @Get(':id')
  @RequireScope('support')
  @ApiOperation({ summary: 'The report: the update and one line per install (state, SQL time, or the error with file, line and statement)' })
  @ApiResponse({ status: 200, type: SqlSnippetReportView })
  @ApiResponse({ status: 404, description: 'NOT_FOUND' })
  report(@Param('id', ParseIntPipe) id: number): Promise<SqlSnippetReportView> {
    return this.snippets.report(id);
  }
}
