import { DomainError } from '@app/common';

export class DnsNameInvalidError extends DomainError {
  constructor(name: string, problem: string) {
    super('DNS_NAME_INVALID', `"${name.slice(0, 80)}" is not a hostname DNS records can be set for: it ${problem}`, 400, { name: name.slice(0, 253) });
  }
}

/** The API did not answer (connection refused, timeout, 5xx) after the retries. */
export class DnsApiUnreachableError extends DomainError {
  constructor(apiUrl: string, why: string, attempts: number) {
    super('DNS_API_UNREACHABLE', `The PowerDNS API at ${apiUrl} did not answer (${why}) after ${attempts} attempts: is pdns_server running with api=yes, and DNS_API_URL right? No DNS record was changed by this call`, 502, { apiUrl, attempts });
  }
}

/** 401/403: the key is wrong (never shown). */
export class DnsApiKeyRejectedError extends DomainError {
  constructor(apiUrl: string, status: number) {
    super('DNS_API_KEY_REJECTED', `The PowerDNS API at ${apiUrl} refused the API key (HTTP ${status}): check DNS_API_KEY against its api-key setting`, 502, { apiUrl, status });
  }
}

/** 422 (and other 4xx): PowerDNS refused the change itself, with its reason. */
export class DnsChangeRejectedError extends DomainError {
  constructor(what: string, status: number, reason: string) {
    super('DNS_CHANGE_REJECTED', `PowerDNS refused ${what} (HTTP ${status}): ${reason}`, status === 422 ? 409 : 502, { status, reason });
  }
}
