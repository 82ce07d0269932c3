import { Body, Controller, Param, ParseIntPipe, Post, Put, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { AcmeRequests } from './acme-requests.service.js';
import { SiteCertificateService } from './site-certificate.service.js';
import { AcmeRequestDto, SiteCertificateView, UploadCertificateDto } from './dto/site-certificate.dto.js';

/** A site's certificate: uploaded (the seed's "Change SSL") or issued through ACME. */
@ApiTags('installs')
@ApiBearerAuth()
@Controller('v1/installs/:id/sites/:siteId/certificate')
export class SiteCertificateController {
  constructor(
    private readonly certificates: SiteCertificateService,
    private readonly acme: AcmeRequests,
  ) {}

  @Put()
  @RequireScope('support')
  @ApiOperation({ summary: "Install an uploaded certificate chain and key on the site: checked before anything changes, written to every dispatcher serving the install (0600, root's), nginx rebuilt, the served certificate probed; the previous pair kept until then and restored on failure (a saga job). dryRun answers the checks and the plan (200)" })
  @ApiResponse({ status: 202, type: SiteCertificateView })
  @ApiResponse({ status: 200, type: SiteCertificateView, description: 'dryRun' })
  @ApiResponse({ status: 400, description: 'VALIDATION_FAILED, CERT_NOT_PEM, CERT_KEY_MISMATCH, CERT_EXPIRED, CERT_EXPIRING_SOON, CERT_NAMES_NOT_COVERED, CERT_CHAIN_ORDER: nothing changed' })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install or the site' })
  @ApiResponse({ status: 409, description: 'INSTALL_NOT_LIVE, INSTALL_NOT_SERVED, CERTS_ROOTS_DIFFER, CERT_CHANGE_RUNNING: nothing changed' })
  async upload(@Param('id', ParseIntPipe) id: number, @Param('siteId', ParseIntPipe) siteId: number, @Body() body: UploadCertificateDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: { status(code: number): unknown }): Promise<SiteCertificateView> {
    const result = await this.certificates.upload(id, siteId, body, { actor: `token:${req.principal.name}`, via: 'api' });
    res.status(result.dryRun ? 200 : 202);
    return result;
  }

  @Post('acme')
  @RequireScope('support')
  @ApiOperation({ summary: "Issue the site's certificate through the ACME CA (HTTP-01 answered by the dispatchers' nginx), after a pre-flight proving each name reaches them, then install it as an upload and renew it before expiry (a job). dryRun answers the plan (200)" })
  @ApiResponse({ status: 202, type: SiteCertificateView })
  @ApiResponse({ status: 404, description: 'NOT_FOUND: the install or the site' })
  @ApiResponse({ status: 409, description: 'ACME_NOT_CONFIGURED, INSTALL_NOT_LIVE, INSTALL_NOT_SERVED, CERTS_ROOTS_DIFFER, CERT_CHANGE_RUNNING: nothing changed' })
  async issue(@Param('id', ParseIntPipe) id: number, @Param('siteId', ParseIntPipe) siteId: number, @Body() body: AcmeRequestDto, @Req() req: { principal: Principal }, @Res({ passthrough: true }) res: { status(code: number): unknown }): Promise<SiteCertificateView> {
    const result = await this.acme.request(id, siteId, body ?? {}, { actor: `token:${req.principal.name}`, via: 'api' });
    res.status(result.dryRun ? 200 : 202);
    return result;
  }
}
