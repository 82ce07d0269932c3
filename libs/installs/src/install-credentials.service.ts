import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, Install, type AuditActor } from '@app/catalog';
import { TemplateError } from '@app/codebases';
import { DomainError, NotFoundError } from '@app/common';
import { InstallBuildSteps } from './build-saga/build-steps.js';
import { FTP_PASSWORD, InstallValues, type CustomerCredential } from './build-saga/install-values.js';
import type { InstallCredentialsView } from './dto/install.view.js';

/** The customer's credentials of an install, for support. */
@Injectable()
export class InstallCredentials {
  constructor(
    private readonly dataSource: DataSource,
    private readonly steps: InstallBuildSteps,
    private readonly values: InstallValues,
    private readonly audit: AuditEventRepository,
  ) {}

  /**
   * What the welcome mail gave the customer, once more (support, on
   * request): the manifest's credentials and the FTP login. Audited, without
   * the values; only for a live install, and never a secret made up now.
   */
  async get(id: number, by: AuditActor): Promise<InstallCredentialsView> {
    const install = await this.dataSource.getRepository(Install).findOneBy({ id });
    if (!install) throw new NotFoundError('Install', id);
    if (install.status !== 'live') throw new DomainError('INSTALL_NOT_LIVE', `Install ${id} is ${install.status}: its credentials are given once it is live`, 409, { installId: id, status: install.status });
    const context = await this.steps.loadContext(id);
    let credentials: CustomerCredential[];
    try {
      credentials = await this.values.credentials(context, { generate: false });
    } catch (error) {
      if (!(error instanceof TemplateError)) throw error;
      throw new DomainError('CREDENTIALS_UNAVAILABLE', `Install ${id}: ${error.message} (the install was built before its manifest declared it)`, 409, { installId: id });
    }
    const secrets = await this.values.secrets(context, { generate: false });
    await this.audit.record({ ...by, action: 'install.credentials', targetType: 'install', targetId: id, details: { labels: credentials.map((c) => c.label) } });
    return { credentials, ftp: { user: install.fsName, password: secrets[FTP_PASSWORD] ?? null } };
  }

}
