import { Module, type DynamicModule } from '@nestjs/common';
import { DatabasesModule } from '@app/databases';
import { MailModule } from '@app/mail';
import { WebserverModule } from '@app/webserver';
import { AcmeChallenges } from './acme-challenges.js';
import { AcmeIssueJob } from './acme-issue.job.js';
import { AcmeIssuer } from './acme-issuer.service.js';
import { AcmeOutcomes } from './acme-outcomes.service.js';
import { AcmeRenewalTask } from './acme-renewal.task.js';
import { AcmeRequests } from './acme-requests.service.js';
import { ServedCertificateProbe } from './served-certificate.probe.js';
import { SiteCertificateController } from './site-certificate.controller.js';
import { SiteCertificateJob } from './site-certificate.job.js';
import { SiteCertificateService } from './site-certificate.service.js';
import { SiteCertificateSteps } from './site-certificate.steps.js';

/**
 * Sites' certificates (issue 17, "Change SSL" and ACME): upload checked and
 * installed by a saga, ACME issuance with a pre-flight, and renewal.
 * `jobs: false` (the CLI) leaves out the job handlers and the renewal task.
 */
@Module({})
export class CertificatesModule {
  static forRoot(options: { http: boolean; jobs: boolean }): DynamicModule {
    return {
      module: CertificatesModule,
      imports: [DatabasesModule, MailModule, WebserverModule],
      controllers: options.http ? [SiteCertificateController] : [],
      providers: [
        SiteCertificateService,
        AcmeRequests,
        ...(options.jobs ? [ServedCertificateProbe, SiteCertificateSteps, SiteCertificateJob, AcmeChallenges, AcmeIssuer, AcmeOutcomes, AcmeIssueJob, AcmeRenewalTask] : []),
      ],
      exports: [SiteCertificateService, AcmeRequests, ...(options.jobs ? [AcmeOutcomes, SiteCertificateJob] : [])],
    };
  }
}
