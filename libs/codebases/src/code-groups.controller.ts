import { Body, Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Patch, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { CodeGroupsService } from './code-groups.service.js';
import { CodeGroupCreatedView, CodeGroupRemovalView, CodeGroupView, CreateCodeGroupDto, UpdateCodeGroupDto } from './dto/code-group.dto.js';
import { PhpCheckView } from './dto/php-check.view.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

@ApiTags('code groups')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/code-groups')
export class CodeGroupsController {
  constructor(private readonly groups: CodeGroupsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary:
      "Create a shared code group: queued clone at a revision on its master, then synced to the other servers. With pinFor, a customer's own codebase: pinned, limit 1, and a pin rule for that customer, in one transaction",
  })
  @ApiResponse({ status: 202, type: CodeGroupCreatedView })
  @ApiResponse({ status: 409, description: 'CODE_GROUP_EXISTS; PIN_RULE_EXISTS (pinFor: a rule already matches that customer; nothing created)' })
  async create(@Body() body: CreateCodeGroupDto, @Req() req: { principal: Principal }): Promise<CodeGroupCreatedView> {
    const { group, jobId, pin } = await this.groups.create(body, by(req));
    return { group: CodeGroupView.of(group), jobId, jobUrl: `/v1/jobs/${jobId}`, ...(pin ? { pinRuleId: pin.ruleId } : {}) };
  }

  @Get()
  @ApiResponse({ status: 200, type: CodeGroupView, isArray: true })
  async list(): Promise<CodeGroupView[]> {
    return (await this.groups.list()).map(CodeGroupView.of);
  }

  @Get(':id')
  @ApiResponse({ status: 200, type: CodeGroupView })
  async get(@Param('id', ParseIntPipe) id: number): Promise<CodeGroupView> {
    return CodeGroupView.of(await this.groups.get(id));
  }

  @Get(':id/php-check')
  @ApiOperation({ summary: "Whether the servers that run the group's PHP (or one server) satisfy its manifest's PHP requirements: version, extensions, settings a pool cannot set; changes nothing" })
  @ApiQuery({ name: 'serverId', required: false, type: Number, description: 'check this server only (it may not hold the group yet)' })
  @ApiResponse({ status: 200, type: PhpCheckView })
  @ApiResponse({ status: 409, description: 'CODE_GROUP_NO_MANIFEST: the manifest is read from the checkout when the clone runs' })
  phpCheck(@Param('id', ParseIntPipe) id: number, @Query('serverId', new ParseIntPipe({ optional: true })) serverId?: number): Promise<PhpCheckView> {
    return this.groups.phpCheck(id, serverId);
  }

  @Patch(':id')
  @ApiOperation({
    summary: "Lock ({locked: true}: no new install lands on it, orders go to other groups of the tier; its installs keep running), unlock ({locked: false}) or retire ({state: 'retired'}) a code group",
  })
  @ApiResponse({ status: 200, type: CodeGroupView })
  async update(@Param('id', ParseIntPipe) id: number, @Body() body: UpdateCodeGroupDto, @Req() req: { principal: Principal }): Promise<CodeGroupView> {
    return CodeGroupView.of(await this.groups.update(id, body, by(req)));
  }

  @Delete(':id')
  @HttpCode(202)
  @ApiOperation({ summary: 'Remove a failed or unused code group: queued removal of its checkout on its master and every server it was synced to, then of the group (its name is free again)' })
  @ApiResponse({ status: 202, type: CodeGroupRemovalView })
  @ApiResponse({ status: 409, description: 'CODE_GROUP_IN_USE: installs (how many) or pin rules use it' })
  async remove(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<CodeGroupRemovalView> {
    const { group, jobId } = await this.groups.remove(id, by(req));
    return { group: CodeGroupView.of(group), jobId, jobUrl: `/v1/jobs/${jobId}` };
  }
}
