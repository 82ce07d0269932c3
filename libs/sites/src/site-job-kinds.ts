import { defineJobKind } from '@app/queue';
import type { AddSitePayload, ChangeHostnamePayload, DowngradePayload, RemoveSitePayload } from './site-payloads.js';

const options = { maxAttempts: 6, backoff: { baseMs: 2_000, maxMs: 60_000 } };

/** A site added to a live install (resource key `install:<id>`: never beside another operation on the install). */
export const SITE_ADD = defineJobKind<AddSitePayload>('site.add', options);
/** A site removed from a live install. */
export const SITE_REMOVE = defineJobKind<RemoveSitePayload>('site.remove', options);
/** A site's hostnames (and maybe IPs) changed. */
export const SITE_HOSTNAME = defineJobKind<ChangeHostnamePayload>('site.hostname', options);
/** A paid install made free (the seed's seven steps). */
export const INSTALL_DOWNGRADE = defineJobKind<DowngradePayload>('install.downgrade', options);

/** The support operations on one install: a second one is refused while one of these (or a codebase change) is open. */
export const SITE_OPERATION_KINDS: readonly string[] = [SITE_ADD.name, SITE_REMOVE.name, SITE_HOSTNAME.name, INSTALL_DOWNGRADE.name, 'install.codebase-change'];

export const installResourceKey = (installId: number) => `install:${installId}`;
