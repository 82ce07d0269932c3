import { DomainError } from '@app/common';

/** A certificate that cannot be installed: each with a stable code; nothing changed (HTTP 400 unless said). */
export const certificateErrors = {
  notPem: (what: string) => new DomainError('CERT_NOT_PEM', `the ${what} is not usable PEM`, 400, { what }),
  keyMismatch: () => new DomainError('CERT_KEY_MISMATCH', 'the private key does not belong to the certificate (the first of the chain)', 400),
  expired: (which: string, notBefore: Date, notAfter: Date, now: Date) =>
    new DomainError(
      'CERT_EXPIRED',
      now < notBefore ? `the ${which} is not valid yet (from ${notBefore.toISOString()})` : `the ${which} expired on ${notAfter.toISOString()}`,
      400,
      { which, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() },
    ),
  expiringSoon: (notAfter: Date, days: number) =>
    new DomainError('CERT_EXPIRING_SOON', `the certificate expires on ${notAfter.toISOString()}, within ${days} days: upload a newer one, or send allowExpiringSoon to install it anyway`, 400, {
      notAfter: notAfter.toISOString(),
    }),
  namesNotCovered: (names: string[], san: string | null) =>
    new DomainError('CERT_NAMES_NOT_COVERED', `the certificate does not cover ${names.join(', ')} (its names: ${san ?? 'none'})`, 400, { names, subjectAltName: san }),
  chainOrder: (index: number, subject: string, next: string) =>
    new DomainError(
      'CERT_CHAIN_ORDER',
      `the chain is out of order: certificate ${index + 1} (${subject}) is not issued and signed by certificate ${index + 2} (${next}); send the leaf first, then each issuer`,
      400,
      { index },
    ),
  acmeOff: () => new DomainError('ACME_NOT_CONFIGURED', 'no ACME CA is configured (ACME_DIRECTORY_URL, ACME_EMAIL): only uploaded certificates can be installed', 409),
  notLive: (installId: number, status: string) =>
    new DomainError('INSTALL_NOT_LIVE', `install ${installId} is ${status}: certificates are installed on a live install`, 409, { installId, status }),
  noDispatcher: (installId: number) => new DomainError('INSTALL_NOT_SERVED', `no dispatcher that is up serves install ${installId}`, 409, { installId }),
  changeRunning: (installId: number, jobId: number) =>
    new DomainError('CERT_CHANGE_RUNNING', `install ${installId} has a certificate change in progress (job ${jobId})`, 409, { installId, jobId }),
};
