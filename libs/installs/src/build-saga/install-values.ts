import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource, IsNull } from 'typeorm';
import { Install, type InstallSite, type Server } from '@app/catalog';
import { CODE_LINK, renderTemplate } from '@app/codebases';
import { registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { TenantDatabases } from '@app/databases';
import { decryptSecret, encryptSecret, randomSecret } from '../secrets-cipher.js';
import { homeOn, type BuildContext } from './build-context.js';

/** Kept with the install's secrets under a name no manifest secret can take. */
export const FTP_PASSWORD = '@ftp';

/** A credential the customer receives (the manifest's `credentials`, rendered). */
export interface CustomerCredential {
  label: string;
  value: string;
}

/** Placeholders that render as empty when the order did not give them. */
export const OPTIONAL_PREFIXES = ['attr.'] as const;

/**
 * What a template of an install sees (SPEC.md "Codebase manifest"): the
 * order's values, every site's hostnames, rel urls and schemes, the
 * database's address and credentials, the home's paths and the install's
 * secrets. The secrets are generated on first use, kept encrypted with the
 * install and stable from then on; every one is registered as a secret of
 * the running job, so no log, journal or error shows it.
 */
@Injectable()
export class InstallValues {
  constructor(
    private readonly dataSource: DataSource,
    private readonly tenants: TenantDatabases,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** Template values for one server (its paths; the database socket only on the database server itself). */
  async values(context: BuildContext, server: Server, options: { generate?: boolean } = {}): Promise<Record<string, string>> {
    const { install, sites, group, dbServer, manifest } = context;
    const secrets = await this.secrets(context, options);
    const connection = await this.tenants.connection(dbServer);
    const sqlite = this.tenants.sqlite(dbServer);
    const dbHost = dbServer.privateIp ?? dbServer.hostname;
    const dbPort = connection.port ?? 3306;
    const first = siteValues(sites[0]!);
    return {
      // The order.
      store_name: install.storeName ?? sites[0]!.hostname,
      admin_email: install.adminEmail ?? install.customerEmail,
      customer_email: install.customerEmail,
      locale: install.locale ?? 'en',
      license: install.license,
      order_ref: install.orderRef,
      ...Object.fromEntries(Object.entries(install.orderAttributes ?? {}).map(([k, v]) => [`attr.${k}`, v])),
      // The first site, and every site by its number.
      ...first,
      ...Object.fromEntries(sites.flatMap((site, i) => Object.entries(siteValues(site)).map(([k, v]) => [`site.${i + 1}.${k}`, v]))),
      // The database.
      db_host: dbHost,
      db_port: String(dbPort),
      // A socket is the database server's own: only a shop on that server can use it.
      db_socket: server.id === dbServer.id && connection.socket ? connection.socket : '',
      // For PDO: the driver and where the database is (the embedded default's are SQLite files).
      db_dsn: sqlite ? `sqlite:${sqlite.file(install.dbName)}` : `mysql:host=${dbHost};port=${dbPort};dbname=${install.dbName};charset=utf8mb4`,
      db_name: install.dbName,
      db_user: install.dbUser,
      db_password: decryptSecret(this.config.secretsKey, install.dbPasswordEnc),
      table_prefix: manifest.sql?.tablePrefix?.value ?? '',
      // The install on this server.
      home: homeOn(server, install),
      // Through the home's `.code` link: the release the install is on, stable across a rollout's switch.
      shared_code: posix.join(homeOn(server, install), CODE_LINK),
      memcache_prefix: `${install.fsName}_`,
      sphinx_index: `idx_${install.fsName}`,
      fs_name: install.fsName,
      ...Object.fromEntries(Object.entries(secrets).filter(([k]) => k !== FTP_PASSWORD).map(([k, v]) => [`secret.${k}`, v])),
    };
  }

  /**
   * The manifest's credentials for the customer, rendered (text), in the
   * manifest's order. `generate: false` (a later look): a secret the install
   * never had is not made up now (the shop would not know it): an error.
   */
  async credentials(context: BuildContext, options: { generate?: boolean } = {}): Promise<CustomerCredential[]> {
    const wanted = context.manifest.credentials ?? [];
    if (wanted.length === 0) return [];
    const values = await this.values(context, context.master, options);
    const out: CustomerCredential[] = [];
    for (const c of wanted) out.push({ label: c.label, value: await renderTemplate(c.value, 'text', values, `credentials "${c.label}"`, { optionalPrefixes: OPTIONAL_PREFIXES }) });
    return out;
  }

  /** The FTP password: generated once, kept encrypted with the install's secrets (the mail repeats it). */
  async ftpPassword(context: BuildContext): Promise<string> {
    const secrets = await this.secrets(context);
    if (secrets[FTP_PASSWORD]) return secrets[FTP_PASSWORD];
    secrets[FTP_PASSWORD] = randomSecret(16);
    registerSecrets(secrets[FTP_PASSWORD]);
    context.install.secretsEnc = encryptSecret(this.config.secretsKey, JSON.stringify(secrets));
    await this.dataSource.getRepository(Install).update({ id: context.install.id }, { secretsEnc: context.install.secretsEnc });
    return secrets[FTP_PASSWORD];
  }

  /** The install's secrets (the manifest's, generated once; the FTP password under its own name). */
  async secrets(context: BuildContext, options: { generate?: boolean } = {}): Promise<Record<string, string>> {
    const { install, manifest } = context;
    const wanted = options.generate === false ? [] : (manifest.secrets ?? []);
    const installs = this.dataSource.getRepository(Install);
    if (install.secretsEnc === null && wanted.length > 0) {
      const fresh = Object.fromEntries(wanted.map((s) => [s.name, randomSecret(s.length, s.alphabet)]));
      // Only the first writer wins: a rerun keeps the secrets already rendered.
      await installs.update({ id: install.id, secretsEnc: IsNull() }, { secretsEnc: encryptSecret(this.config.secretsKey, JSON.stringify(fresh)) });
      install.secretsEnc = (await installs.findOneByOrFail({ id: install.id })).secretsEnc;
    }
    const stored = install.secretsEnc ? (JSON.parse(decryptSecret(this.config.secretsKey, install.secretsEnc)) as Record<string, string>) : {};
    registerSecrets(...Object.values(stored));
    // A secret the manifest gained since: generated now, kept from then on.
    const missing = wanted.filter((s) => stored[s.name] === undefined);
    if (missing.length > 0) {
      for (const s of missing) stored[s.name] = randomSecret(s.length, s.alphabet);
      registerSecrets(...Object.values(stored));
      install.secretsEnc = encryptSecret(this.config.secretsKey, JSON.stringify(stored));
      await installs.update({ id: install.id }, { secretsEnc: install.secretsEnc });
    }
    return stored;
  }
}

/**
 * A site's values: hostnames, rel urls, and schemes: `https` where the site
 * has a certificate installed, else `http` (a certificate changed later
 * re-renders what depends on it).
 */
export function siteValues(site: InstallSite): Record<string, string> {
  const secureHostname = site.secureHostname ?? site.hostname;
  const tls = site.sslPemPath !== null && site.sslKeyPath !== null;
  const scheme = tls ? 'https' : 'http';
  return {
    hostname: site.hostname,
    secure_hostname: secureHostname,
    rel_url: site.relUrl,
    secure_rel_url: site.secureRelUrl,
    scheme,
    secure_scheme: scheme,
    url: `${scheme}://${site.hostname}${site.relUrl}`,
    secure_url: `${scheme}://${secureHostname}${site.secureRelUrl}`,
  };
}
