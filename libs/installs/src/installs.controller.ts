import { Body, Controller, Get, Header, Inject, Param, ParseIntPipe, Post, Put, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiOperation, ApiResponse, ApiTags, getSchemaPath } from '@nestjs/swagger';
import { LimitOrderRate, RequireScope, type Principal } from '@app/auth';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { checkSitesAllowed, CreateInstallDto } from './dto/create-install.dto.js';
import { InstallAcceptedView, InstallCredentialsView, InstallSummaryView, InstallView, ListInstallsQuery } from './dto/install.view.js';
import { RewriteRuleDto, RewritesPlanView, SetRewritesDto } from './dto/rewrites.dto.js';
import { InstallRewritesService } from './install-rewrites.service.js';
import { InstallCredentials } from './install-credentials.service.js';
import { InstallsService } from './installs.service.js';

@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs')
export class InstallsController {
  constructor(
    private readonly installs: InstallsService,
    private readonly credentialsOf: InstallCredentials,
    private readonly rewrites: InstallRewritesService,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  @Post()
  @RequireScope('orders')
  @LimitOrderRate()
  @ApiOperation({ summary: 'The order hook: record the install and queue its build (idempotent on orderRef)' })
  @ApiResponse({ status: 202, type: InstallAcceptedView, description: 'accepted: the build is queued (or waits for a code group)' })
  @ApiResponse({ status: 200, type: InstallAcceptedView, description: 'this order reference was seen before: the same install' })
  @ApiResponse({ status: 400, description: 'invalid, or more sites than the license allows (TOO_MANY_SITES): nothing created' })
  @ApiResponse({ status: 429, description: 'RATE_LIMITED: this token placed ORDERS_PER_MINUTE orders this minute; Retry-After says when to retry; nothing created' })
  async create(@Body() body: CreateInstallDto, @Res({ passthrough: true }) res: { status(code: number): unknown }): Promise<InstallAcceptedView> {
    checkSitesAllowed(body, this.config.orders.maxSites);
    const { view, created } = await this.installs.order(body);
    res.status(created ? 202 : 200);
    return view;
  }

  @Get()
  @RequireScope('support')
  @ApiResponse({ status: 200, type: InstallSummaryView, isArray: true })
  list(@Query() query: ListInstallsQuery): Promise<InstallSummaryView[]> {
    return this.installs.list(query);
  }

  @Get(':id')
  @RequireScope('support')
  @ApiResponse({ status: 200, type: InstallView })
  get(@Param('id', ParseIntPipe) id: number): Promise<InstallView> {
    return this.installs.get(id);
  }

  @Get(':id/credentials')
  @RequireScope('support')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'What the welcome mail gave the customer (the manifest\'s credentials, the FTP login), once more; audited' })
  @ApiResponse({ status: 200, type: InstallCredentialsView })
  @ApiResponse({ status: 409, description: 'INSTALL_NOT_LIVE: not live yet (or any more)' })
  credentials(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<InstallCredentialsView> {
    return this.credentialsOf.get(id, { actor: `token:${req.principal.name}`, via: 'api' });
  }

  @Put(':id/rewrites')
  @RequireScope('support')
  @ApiOperation({ summary: "Replace the install's rewrite rules (redirects); its dispatchers' nginx is rebuilt and the change audited (before/after). dryRun answers the plan: each dispatcher's vhost before and after as a unified diff, nothing stored or rebuilt" })
  @ApiExtraModels(RewritesPlanView)
  @ApiResponse({ status: 200, description: 'the rules now stored (an array of rules); with dryRun, the plan (RewritesPlanView)', schema: { oneOf: [{ type: 'array', items: { $ref: getSchemaPath(RewriteRuleDto) } }, { $ref: getSchemaPath(RewritesPlanView) }] } })
  @ApiResponse({ status: 400, description: 'a rule is malformed, or takes a path another location has (REWRITE_REFUSED): nothing changes' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: no such install' })
  @ApiResponse({ status: 409, description: 'INSTALL_REMOVED: the install is being removed or is removed' })
  async setRewrites(@Param('id', ParseIntPipe) id: number, @Body() body: SetRewritesDto, @Req() req: { principal: Principal }): Promise<RewriteRuleDto[] | RewritesPlanView> {
    if (body.dryRun) return this.rewrites.plan(id, body.rules);
    return (await this.rewrites.set(id, body.rules, { actor: `token:${req.principal.name}`, via: 'api' })).rules;
  }
}
