import { Body, Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Patch, Post, Put, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { AddHandlerDto, CloudsOnlyDto, HandlerJobView, HandlerView, SetWeightDto } from './dto/handlers.dto.js';
import { InstallHandlersService } from './install-handlers.service.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

/** An install's PHP handlers: operations staff add clouds during a spike (SPEC "Operations": admin API). */
@ApiTags('handlers')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/installs/:id/handlers')
export class InstallHandlersController {
  constructor(private readonly handlers: InstallHandlersService) {}

  @Get()
  @ApiOperation({ summary: "The install's handlers: role, state, weight, pool port" })
  @ApiResponse({ status: 200, type: HandlerView, isArray: true })
  async list(@Param('id', ParseIntPipe) id: number): Promise<HandlerView[]> {
    return (await this.handlers.list(id)).map(HandlerView.of);
  }

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Add a handler: files, shared code, user, crons, pool, then the upstream on every dispatcher (a saga job)' })
  @ApiResponse({ status: 202, type: HandlerJobView })
  @ApiResponse({ status: 409, description: 'INSTALL_NOT_LIVE, NOT_A_HANDLER_SERVER, SERVER_NOT_ACTIVE, SERVER_HAS_NO_PRIVATE_IP, HANDLER_EXISTS: nothing changed' })
  async add(@Param('id', ParseIntPipe) id: number, @Body() body: AddHandlerDto, @Req() req: { principal: Principal }): Promise<HandlerJobView> {
    const { jobId, handler } = await this.handlers.add(id, body.serverId, body.weight, by(req));
    return { jobId, handler: HandlerView.of(handler) };
  }

  @Put('clouds-only')
  @ApiOperation({ summary: "All PHP traffic to the install's clouds (master and replica become nginx backups), or back" })
  @ApiResponse({ status: 200, type: HandlerView, isArray: true })
  @ApiResponse({ status: 409, description: 'NO_ACTIVE_CLOUD: the install has no active cloud with a weight; nothing changed' })
  async cloudsOnly(@Param('id', ParseIntPipe) id: number, @Body() body: CloudsOnlyDto, @Req() req: { principal: Principal }): Promise<HandlerView[]> {
    return (await this.handlers.cloudsOnly(id, body.enabled, by(req))).map(HandlerView.of);
  }

  @Patch(':serverId')
  @ApiOperation({ summary: "A handler's upstream weight (0-100)" })
  @ApiResponse({ status: 200, type: HandlerView })
  @ApiResponse({ status: 409, description: 'NO_ACTIVE_CLOUD: every permanent handler would be a backup with no cloud serving; nothing changed' })
  async setWeight(
    @Param('id', ParseIntPipe) id: number,
    @Param('serverId', ParseIntPipe) serverId: number,
    @Body() body: SetWeightDto,
    @Req() req: { principal: Principal },
  ): Promise<HandlerView> {
    return HandlerView.of(await this.handlers.setWeight(id, serverId, body.weight, by(req)));
  }

  @Delete(':serverId')
  @HttpCode(202)
  @ApiOperation({ summary: 'Take a cloud off the install: out of every upstream first, then its pool, files, crons and user (a saga job)' })
  @ApiResponse({ status: 202, type: HandlerJobView })
  @ApiResponse({ status: 409, description: 'HANDLER_IS_MASTER, HANDLER_NOT_CLOUD, HANDLER_BUSY, ONLY_HANDLER: nothing changed' })
  remove(@Param('id', ParseIntPipe) id: number, @Param('serverId', ParseIntPipe) serverId: number, @Req() req: { principal: Principal }): Promise<HandlerJobView> {
    return this.handlers.remove(id, serverId, by(req));
  }
}
