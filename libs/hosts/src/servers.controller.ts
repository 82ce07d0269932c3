import { Body, Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Patch, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { DomainError } from '@app/common';
import { AddIpsDto, CreateServerDto, UpdateServerDto } from './dto/server.dto.js';
import { ServerCheckView, ServerIpView, ServerView } from './dto/server.view.js';
import { InventoryService } from './inventory.service.js';

const by = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

@ApiTags('servers')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/servers')
export class ServersController {
  constructor(private readonly inventory: InventoryService) {}

  @Post()
  @ApiOperation({ summary: 'Add a server to the inventory' })
  @ApiResponse({ status: 201, type: ServerView })
  async create(@Body() body: CreateServerDto, @Req() req: { principal: Principal }): Promise<ServerView> {
    return ServerView.of(await this.inventory.create(body, by(req)));
  }

  @Get()
  @ApiOperation({ summary: 'The inventory' })
  @ApiResponse({ status: 200, type: ServerView, isArray: true })
  async list(): Promise<ServerView[]> {
    return (await this.inventory.list()).map(ServerView.of);
  }

  @Get(':id')
  @ApiResponse({ status: 200, type: ServerView })
  async get(@Param('id', ParseIntPipe) id: number): Promise<ServerView> {
    return ServerView.of(await this.inventory.get(id));
  }

  @Patch(':id')
  @ApiOperation({ summary: 'Change a server (state: active, draining, down)' })
  @ApiResponse({ status: 200, type: ServerView })
  async update(@Param('id', ParseIntPipe) id: number, @Body() body: UpdateServerDto, @Req() req: { principal: Principal }): Promise<ServerView> {
    return ServerView.of(await this.inventory.update(id, body, by(req)));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a server (refused while installs live there)' })
  async remove(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<void> {
    await this.inventory.remove(id, by(req));
  }

  @Post(':id/check')
  @HttpCode(200)
  @ApiOperation({ summary: 'Reachability, host key, roots and tools, item by item' })
  @ApiResponse({ status: 200, type: ServerCheckView })
  check(@Param('id', ParseIntPipe) id: number): Promise<ServerCheckView> {
    return this.inventory.check(id);
  }

  @Get(':id/ips')
  @ApiResponse({ status: 200, type: ServerIpView, isArray: true })
  async ips(@Param('id', ParseIntPipe) id: number): Promise<ServerIpView[]> {
    return (await this.inventory.ips(id)).map(ServerIpView.of);
  }

  @Post(':id/ips')
  @ApiOperation({ summary: "Add IPs to the server's pool (all or none)" })
  @ApiResponse({ status: 201, type: ServerIpView, isArray: true })
  async addIps(@Param('id', ParseIntPipe) id: number, @Body() body: AddIpsDto, @Req() req: { principal: Principal }): Promise<ServerIpView[]> {
    return (await this.inventory.addIps(id, body, by(req))).map(ServerIpView.of);
  }

  @Delete(':id/ips/:ip')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove an unused IP from the pool' })
  async removeIp(@Param('id', ParseIntPipe) id: number, @Param('ip') ip: string, @Req() req: { principal: Principal }): Promise<void> {
    if (!/^[0-9a-fA-F.:]{2,45}$/.test(ip)) throw new DomainError('VALIDATION_FAILED', 'ip must be an IP address', 400);
    await this.inventory.removeIp(id, ip, by(req));
  }
}
