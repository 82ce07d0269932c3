import { Body, Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Patch, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { CloudServersService } from './cloud-servers.service.js';
import { CloudServerJobView, CloudServerView, SetLeaseDto } from './dto/handlers.dto.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

/**
 * Cloud servers after they are in the inventory (`POST /v1/servers` with
 * role cloud, `POST /v1/servers/:id/check`): lease, drain, remove.
 */
@ApiTags('cloud servers')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/cloud-servers')
export class CloudServersController {
  constructor(private readonly clouds: CloudServersService) {}

  @Get()
  @ApiResponse({ status: 200, type: CloudServerView, isArray: true })
  async list(): Promise<CloudServerView[]> {
    return (await this.clouds.list()).map(CloudServerView.of);
  }

  @Get(':id')
  @ApiResponse({ status: 200, type: CloudServerView })
  async get(@Param('id', ParseIntPipe) id: number): Promise<CloudServerView> {
    return CloudServerView.of(await this.clouds.get(id));
  }

  @Patch(':id')
  @ApiOperation({ summary: 'Set, extend or clear the lease (operations are mailed 24 h before it ends; it is drained at the end)' })
  @ApiResponse({ status: 200, type: CloudServerView })
  @ApiResponse({ status: 400, description: 'LEASE_IN_PAST or not an ISO 8601 time' })
  async setLease(@Param('id', ParseIntPipe) id: number, @Body() body: SetLeaseDto, @Req() req: { principal: Principal }): Promise<CloudServerView> {
    return CloudServerView.of(await this.clouds.setLease(id, body.leaseExpiresAt === null ? null : new Date(body.leaseExpiresAt), by(req)));
  }

  @Post(':id/drain')
  @HttpCode(202)
  @ApiOperation({ summary: 'State draining: out of every upstream (in-flight requests finish); the job waits for every dispatcher' })
  @ApiResponse({ status: 202, type: CloudServerJobView })
  @ApiResponse({ status: 409, description: 'SERVER_DRAINING, ONLY_HANDLER, NOT_A_CLOUD_SERVER: nothing changed' })
  drain(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<CloudServerJobView> {
    return this.clouds.drain(id, by(req));
  }

  @Delete(':id')
  @HttpCode(202)
  @ApiOperation({ summary: 'Remove a drained cloud: every install taken off it (remove-handler sagas), then the server row' })
  @ApiResponse({ status: 202, type: CloudServerJobView })
  @ApiResponse({ status: 409, description: 'SERVER_NOT_DRAINED, HANDLER_BUSY, ONLY_HANDLER, NOT_A_CLOUD_SERVER: nothing changed' })
  remove(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<CloudServerJobView> {
    return this.clouds.remove(id, by(req));
  }
}
