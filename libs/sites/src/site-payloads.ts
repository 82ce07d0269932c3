import type { AuditInterface, InstallServerRole, InstallServerState } from '@app/catalog';
import type { SiteIpRow, SiteSnapshot } from './site-catalog.js';

export type { SiteIpRow, SiteSnapshot } from './site-catalog.js';

/** Who asked for an operation: carried to the job's audit events. */
export interface RequestedBy {
  actor: string;
  via: AuditInterface;
}

export interface AddSitePayload {
  installId: number;
  /** The site row the request made (with its names and IPs). */
  siteId: number;
  names: string[];
  requestedBy: RequestedBy;
}

export interface RemoveSitePayload {
  installId: number;
  /** The site as it was: put back exactly when the removal is undone. */
  site: SiteSnapshot;
  requestedBy: RequestedBy;
}

export interface ChangeHostnamePayload {
  installId: number;
  siteId: number;
  /** The site as it was: what a failure puts back. */
  from: SiteSnapshot;
  to: {
    hostname: string;
    secureHostname: string | null;
    /** Explicit IPs; null keeps the site's. */
    ips: SiteIpRow[] | null;
  };
  /** The installed certificate does not cover the new names: dropped (the site serves http until a new one is installed). */
  dropCertificate: boolean;
  requestedBy: RequestedBy;
}

/** An install_servers row as it was, to put a former replica back. */
export interface ServerRowSnapshot {
  serverId: number;
  role: InstallServerRole;
  weight: number;
  poolPort: number | null;
  state: InstallServerState;
}

export interface DowngradePayload {
  installId: number;
  fromGroupId: number;
  toGroupId: number;
  /** The install_servers rows of the servers whose copy goes (every one but the master). */
  replicas: ServerRowSnapshot[];
  /** The install_site_ips rows given up (every one but one per site on the master). */
  releasedIps: (SiteIpRow & { installSiteId: number })[];
  /** ftp_accounts.enabled before (null: no account). */
  ftpEnabled: boolean | null;
  mounts: { serverId: number; source: string; target: string }[];
  requestedBy: RequestedBy;
}
