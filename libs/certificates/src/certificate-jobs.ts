import { defineJobKind } from '@app/queue';
import type { SiteCertificatePayload } from './site-certificate.steps.js';

/** A site's certificate installed (uploaded or issued through ACME); resource key `install:<id>`. */
export const SITE_CERTIFICATE = defineJobKind<SiteCertificatePayload>('site.certificate', {
  maxAttempts: 6,
  backoff: { baseMs: 2_000, maxMs: 60_000 },
});

export interface AcmeIssuePayload {
  installId: number;
  siteId: number;
  /** Asked by the renewal task (else by support). */
  renewal: boolean;
  actor: string;
}

/**
 * A site's certificate issued through ACME (HTTP-01), then installed by a
 * SITE_CERTIFICATE job; resource key `install:<id>`. Not retried by the
 * queue: a failure is counted and backed off by the site's ACME state
 * (the CA's rate limits).
 */
export const ACME_ISSUE = defineJobKind<AcmeIssuePayload>('site.acme-issue', {
  // A failure is permanent (PermanentJobError): the second attempt is only for a worker that died mid-issuance.
  maxAttempts: 2,
  backoff: { baseMs: 60_000, maxMs: 60_000 },
});

/** Certificate operations on one install run one at a time, after its build and beside nothing else on it. */
export const installResourceKey = (installId: number) => `install:${installId}`;
export const CERT_JOB_KINDS = [SITE_CERTIFICATE.name, ACME_ISSUE.name];
