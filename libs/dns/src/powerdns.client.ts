import { setTimeout as sleep } from 'node:timers/promises';
import { registerSecrets } from '@app/common';
import { DnsApiKeyRejectedError, DnsApiUnreachableError, DnsChangeRejectedError } from './dns.errors.js';

export interface PowerDnsSettings {
  apiUrl: string;
  apiKey: string;
  serverId: string;
}

export interface PowerDnsRrset {
  name: string;
  type: string;
  ttl?: number;
  changetype?: 'REPLACE' | 'DELETE';
  records: { content: string; disabled: boolean }[];
}

export interface PowerDnsClientOptions {
  /** Per request. */
  timeoutMs?: number;
  /** Further attempts after a connection error, timeout or 5xx. */
  retries?: number;
  retryDelayMs?: number;
}

/**
 * PowerDNS authoritative's HTTP API (/api/v1/servers/:serverId), the calls
 * the site records need. The key goes in the X-API-Key header only: errors
 * name the API's URL and status, never the key (and it is registered as a
 * secret of the running job, so its output masks it too).
 */
export class PowerDnsClient {
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;

  constructor(
    private readonly settings: PowerDnsSettings,
    options: PowerDnsClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 2;
    this.retryDelayMs = options.retryDelayMs ?? 300;
  }

  get apiUrl(): string {
    return this.settings.apiUrl;
  }

  /** The zones' names (with PowerDNS's trailing dot) and ids. */
  async zones(): Promise<{ id: string; name: string }[]> {
    const body = (await this.call('GET', '/zones', undefined, 'listing the zones')) as { id: string; name: string }[];
    return body.map((z) => ({ id: z.id, name: z.name }));
  }

  /** The zone's RRsets of one name (the filter is asked for, and applied here too: 4.7 answers the whole zone). */
  async rrsets(zoneId: string, name: string): Promise<PowerDnsRrset[]> {
    const fqdn = `${name}.`;
    const query = new URLSearchParams({ rrset_name: fqdn }).toString();
    const body = (await this.call('GET', `/zones/${encodeURIComponent(zoneId)}?${query}`, undefined, `reading zone ${zoneId.replace(/\.$/, '')}`)) as { rrsets?: PowerDnsRrset[] };
    return (body.rrsets ?? []).filter((r) => r.name.toLowerCase() === fqdn);
  }

  /** One PATCH: PowerDNS applies all its RRsets in one transaction (each replaced or deleted whole). */
  async patch(zoneId: string, rrsets: PowerDnsRrset[]): Promise<void> {
    await this.call('PATCH', `/zones/${encodeURIComponent(zoneId)}`, { rrsets }, `the change of zone ${zoneId.replace(/\.$/, '')}`);
  }

  private async call(method: string, path: string, body: unknown, what: string): Promise<unknown> {
    registerSecrets(this.settings.apiKey);
    const url = `${this.settings.apiUrl}/api/v1/servers/${encodeURIComponent(this.settings.serverId)}${path}`;
    let why = '';
    const attempts = this.retries + 1;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await sleep(this.retryDelayMs * (attempt - 1));
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: { 'X-API-Key': this.settings.apiKey, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this.timeoutMs),
          redirect: 'error',
        });
      } catch (error) {
        why = this.describe(error);
        continue;
      }
      const text = await res.text().catch(() => '');
      if (res.status >= 500) {
        why = `HTTP ${res.status}${this.reason(text) ? `: ${this.reason(text)}` : ''}`;
        continue;
      }
      if (res.status === 401 || res.status === 403) throw new DnsApiKeyRejectedError(this.settings.apiUrl, res.status);
      if (res.status >= 400) throw new DnsChangeRejectedError(what, res.status, this.reason(text) || res.statusText || 'no reason given');
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch {
        throw new DnsChangeRejectedError(what, res.status, 'the API answered something that is not JSON (is DNS_API_URL the PowerDNS API?)');
      }
    }
    throw new DnsApiUnreachableError(this.settings.apiUrl, why, attempts);
  }

  /** PowerDNS's own message ({"error": "..."}), the key masked should it ever echo it. */
  private reason(text: string): string {
    let reason = text;
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed?.error === 'string') reason = parsed.error;
    } catch {
      /* plain text */
    }
    return this.mask(reason.trim().slice(0, 500));
  }

  private describe(error: unknown): string {
    const err = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    if (err?.name === 'TimeoutError') return `no answer within ${this.timeoutMs} ms`;
    const cause = err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(error);
    return this.mask(String(cause));
  }

  private mask(text: string): string {
    return this.settings.apiKey ? text.split(this.settings.apiKey).join('[redacted]') : text;
  }
}
