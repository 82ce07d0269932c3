import { Body, Controller, Delete, HttpCode, Param, ParseIntPipe, Patch, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { AddSiteDto, ChangeHostnameDto, SiteOperationView } from './dto/site-ops.dto.js';
import { HostnameChangeService } from './hostname-change.service.js';
import { SiteAddService } from './site-add.service.js';
import { SiteRemoveService } from './site-remove.service.js';

type Reply = { status(code: number): unknown };
const actor = (req: { principal: Principal }) => ({ actor: `token:${req.principal.name}`, via: 'api' as const });

/** A live install's sites (the seed's "Adding a new site", "Change install hostname"): each a saga job on `install:<id>`. */
@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs/:id/sites')
export class SitesController {
  constructor(
    private readonly adds: SiteAddService,
    private readonly removals: SiteRemoveService,
    private readonly hostnames: HostnameChangeService,
  ) {}

  @Post()
  @RequireScope('support')
  @ApiOperation({ summary: 'Add a site: names claimed, IPs allocated as at prepare (paid: one per dispatcher), the manifest\'s add_site SQL, config files, DNS, nginx, probed through every dispatcher; undone on failure. dryRun answers the plan (200)' })
  @ApiResponse({ status: 202, type: SiteOperationView })
  @ApiResponse({ status: 200, type: SiteOperationView, description: 'dryRun: the plan, nothing changed' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install' })
  @ApiResponse({ status: 409, description: 'HOSTNAME_TAKEN, INSTALL_NOT_LIVE, TOO_MANY_SITES, IP_POOL_EXHAUSTED, OPERATION_RUNNING, INSTALL_SERVER_DOWN: nothing changed' })
  async add(@Param('id', ParseIntPipe) id: number, @Body() body: AddSiteDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Reply): Promise<SiteOperationView> {
    const view = await this.adds.add(id, body, actor(req));
    res.status(view.dryRun ? 200 : 202);
    return view;
  }

  @Patch(':siteId')
  @RequireScope('support')
  @ApiOperation({ summary: 'Change a site\'s hostname, secure hostname and optionally its IPs: the new names claimed first, the hostname_change SQL, config files, DNS, nginx, probed; the old names (records, vhost, a certificate not covering the new ones) released once the new ones serve; back to the old name on failure. dryRun answers the plan (200)' })
  @ApiResponse({ status: 202, type: SiteOperationView })
  @ApiResponse({ status: 200, type: SiteOperationView, description: 'dryRun: the plan, nothing changed' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install, the site or a server IP' })
  @ApiResponse({ status: 409, description: 'HOSTNAME_TAKEN, HOSTNAME_UNCHANGED, IPS_NOT_USABLE, INSTALL_NOT_LIVE, OPERATION_RUNNING, INSTALL_SERVER_DOWN: nothing changed' })
  async change(@Param('id', ParseIntPipe) id: number, @Param('siteId', ParseIntPipe) siteId: number, @Body() body: ChangeHostnameDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Reply): Promise<SiteOperationView> {
    const view = await this.hostnames.change(id, siteId, body, actor(req));
    res.status(view.dryRun ? 200 : 202);
    return view;
  }

  @Delete(':siteId')
  @RequireScope('support')
  @HttpCode(202)
  @ApiOperation({ summary: 'Remove a site (never the last): its vhost, DNS records, IPs, names and certificate files; put back on failure. ?dryRun=true answers the plan (200)' })
  @ApiQuery({ name: 'dryRun', required: false, enum: ['true', 'false'] })
  @ApiResponse({ status: 202, type: SiteOperationView })
  @ApiResponse({ status: 200, type: SiteOperationView, description: 'dryRun: the plan, nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install or the site' })
  @ApiResponse({ status: 409, description: 'LAST_SITE, INSTALL_NOT_LIVE, OPERATION_RUNNING, INSTALL_SERVER_DOWN: nothing changed' })
  async remove(@Param('id', ParseIntPipe) id: number, @Param('siteId', ParseIntPipe) siteId: number, @Query('dryRun') dryRun: string | undefined, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: Reply): Promise<SiteOperationView> {
    const view = await this.removals.remove(id, siteId, { dryRun: queryFlag(dryRun) }, actor(req));
    res.status(view.dryRun ? 200 : 202);
    return view;
  }
}

/** `true`/`false` as booleans; anything else passed on for the DTO to refuse. */
export function queryFlag(value: unknown): unknown {
  if (value === undefined) return undefined;
  return value === 'true' ? true : value === 'false' ? false : value;
}
