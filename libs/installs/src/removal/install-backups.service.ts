import { posix } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { FtpAccount, InstallBackup, InstallServer, InstallSiteIp, Server, ServerIp, SiteName, StartupMount } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { checkServerPath, ServerAccess } from '@app/hosts';
import type { StepIO } from '@app/saga';
import { decryptSecret } from '../secrets-cipher.js';
import { cronFileOn, homeOn } from '../build-saga/build-context.js';
import { HOME_MARKER, homeMarker } from '../build-saga/build-steps.js';
import { backupDirOn, backupsRootOn, type RemovalContext } from './removal-context.js';
import { TenantDumps } from './tenant-dumps.js';

const DAY_MS = 24 * 60 * 60_000;
export const HOME_ARCHIVE = 'home.tar.gz';
export const DATABASE_DUMP = 'database.sql.gz';
export const CATALOG_FILE = 'catalog.json';

/** A file of a backup: its name in the backup's directory, size and sha256. */
export interface BackupFile {
  name: string;
  bytes: number;
  sha256: string;
}

/** A site's certificate as it was, and where the backup keeps it. */
export interface BackupCertificate {
  siteId: number;
  pem: string;
  key: string;
  pemFile: string;
  keyFile: string;
  /** The servers that held it (every one gets it back on restore). */
  servers: number[];
}

/** What a backup holds (install_backups.contents). */
export interface BackupContents {
  /** The removal job that took it. */
  jobId: number | null;
  files: BackupFile[];
  home: { server: string; path: string; entries: number } | { skipped: string };
  database: { server: string; name: string; user: string } | { skipped: string };
  certificates: BackupCertificate[];
  /** The catalog rows needed to bring the install back. */
  catalog: BackupCatalog;
  /** The removal's verification sweep, once it ran. */
  sweep?: unknown;
}

export interface BackupCatalog {
  install: { status: string; license: string; sharedCodeGroupId: number | null; codeRevision: string | null; masterServerId: number | null; dbServerId: number | null };
  group: { id: number; name: string; revision: string | null } | null;
  sites: { id: number; hostname: string; secureHostname: string | null; relUrl: string; secureRelUrl: string; sslPemPath: string | null; sslKeyPath: string | null; certSource: string | null; certSha256: string | null; certNotAfter: string | null }[];
  siteNames: { installSiteId: number; name: string }[];
  siteIps: { installSiteId: number; serverId: number; serverIpId: number; ip: string; kind: string; exclusive: boolean }[];
  servers: { serverId: number; role: string; weight: number; poolPort: number | null; state: string }[];
  ftpAccount: { userid: string; passwd: string; uid: number; gid: number; homedir: string; shell: string; enabled: boolean } | null;
  mounts: { serverId: number; source: string; target: string }[];
  crons: { server: string; text: string }[];
}

/**
 * The backup a removal takes before it deletes anything, in a directory the
 * engine makes for it alone on the install's master (below the home root,
 * in `.install-backups`, named from ids only: never a path derived from an
 * order): the home's own files (a tar: links stay links, so the shared code
 * is not in it; other file systems mounted inside are not crossed), the
 * tenant database's dump (only a database this install made), the sites'
 * certificates and the catalog rows a restore needs. Kept for
 * BACKUP_GRACE_DAYS; purged after.
 */
@Injectable()
export class InstallBackups {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly dumps: TenantDumps,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** The backup this removal job took or is taking (one at a time per install: the removal is serialized per install). */
  async ofJob(installId: number, jobId: number | null): Promise<InstallBackup | null> {
    const rows = await this.dataSource.getRepository(InstallBackup).find({ where: { installId }, order: { id: 'DESC' } });
    return rows.find((r) => (r.contents as BackupContents | null)?.jobId === jobId || (r.state === 'taking' && r.contents === null)) ?? null;
  }

  /** The newest kept backup of an install (what a restore uses). */
  kept(installId: number): Promise<InstallBackup | null> {
    return this.dataSource.getRepository(InstallBackup).findOne({ where: { installId, state: 'kept' }, order: { id: 'DESC' } });
  }

  /**
   * Takes the backup (again from the start when a run died while taking it:
   * every file is rewritten whole). Done already when this job's backup is kept.
   */
  async take(context: RemovalContext, io: StepIO): Promise<InstallBackup> {
    const { install, master } = context;
    const repo = this.dataSource.getRepository(InstallBackup);
    let row = await this.ofJob(install.id, context.jobId);
    if (row?.state === 'kept') {
      io.log(`backup ${row.id} kept already at ${row.path} on ${master.hostname}`);
      return row;
    }
    if (!row) {
      row = await repo.save(repo.create({ installId: install.id, serverId: master.id, path: '', state: 'taking', expiresAt: new Date(Date.now() + this.config.backupGraceDays * DAY_MS), contents: null }));
      row.path = backupDirOn(master, install.id, row.id);
      await repo.update({ id: row.id }, { path: row.path, contents: { jobId: context.jobId } as never });
    }
    const executor = this.access.executorFor(master);
    const dir = checkServerPath(master, row.path, { allowRoot: false });
    // The engine's user alone reads a backup (a database dump, certificate keys).
    await executor.mkdirs(master, [backupsRootOn(master)], { mode: 0o700 });
    await executor.mkdirs(master, [dir], { mode: 0o700 });

    const home = await this.backupHome(context, dir, io);
    const database = await this.backupDatabase(context, dir, io);
    const certificates = await this.backupCertificates(context, dir, io);
    const catalog = await this.catalogRows(context);
    await executor.writeFile(master, posix.join(dir, CATALOG_FILE), JSON.stringify(catalog, null, 2), { mode: 0o600 });
    const files = await this.listFiles(master, dir);
    const contents: BackupContents = { jobId: context.jobId, files, home, database, certificates, catalog };
    const sizeBytes = files.reduce((n, f) => n + f.bytes, 0);
    const expiresAt = new Date(Date.now() + this.config.backupGraceDays * DAY_MS);
    await repo.update({ id: row.id }, { state: 'kept', sizeBytes: String(sizeBytes), contents: contents as never, expiresAt, error: null });
    io.log(`backup ${row.id} kept until ${expiresAt.toISOString()} at ${dir} on ${master.hostname}: ${files.map((f) => `${f.name} (${f.bytes} bytes)`).join(', ')}`);
    return repo.findOneByOrFail({ id: row.id });
  }

  /** Removes a backup's directory (a failed removal's, or an expired one); tolerates "gone". */
  async removeFiles(backup: InstallBackup): Promise<void> {
    if (!backup.path) return;
    const server = await this.dataSource.getRepository(Server).findOneByOrFail({ id: backup.serverId });
    const path = checkServerPath(server, backup.path, { allowRoot: false });
    // Only a directory of the backups' own root, named as the engine names them.
    if (posix.dirname(path) !== backupsRootOn(server) || !/^install-\d+-\d+$/.test(posix.basename(path))) throw new Error(`refused to remove ${path}: not a backup directory the engine made`);
    const executor = this.access.executorFor(server);
    // Gone, or never made (its root not a directory: the failure that undid the removal): nothing to remove.
    if ((await executor.run(server, ['test', '-d', path])).exitCode !== 0) return;
    await executor.remove(server, path);
  }

  /** The home on the master, when this install made it (its marker): tar of the directory as it is (links as links, one file system). */
  private async backupHome({ install, master }: RemovalContext, dir: string, io: StepIO): Promise<BackupContents['home']> {
    const executor = this.access.executorFor(master);
    const home = homeOn(master, install);
    const marker = posix.join(home, HOME_MARKER);
    if (!(await executor.exists(master, home))) return { skipped: `no home ${home} on ${master.hostname}` };
    if (!(await executor.exists(master, marker)) || (await executor.readFile(master, marker)).toString('utf8') !== homeMarker(install)) {
      io.log(`${home} on ${master.hostname} was not made by this install: not backed up, and it will not be removed`);
      return { skipped: `${home} was not made by this install` };
    }
    const archive = posix.join(dir, HOME_ARCHIVE);
    await executor.mustRun(master, ['tar', '--one-file-system', '--create', '--gzip', '--file', archive, '--directory', checkServerPath(master, master.homeRoot), '--', install.fsName], { timeoutMs: 30 * 60_000 });
    const entries = (await executor.mustRun(master, ['tar', '--list', '--gzip', '--file', archive], { timeoutMs: 10 * 60_000 })).split('\n').filter(Boolean).length;
    io.log(`home ${home}: ${entries} entries in ${HOME_ARCHIVE}`);
    return { server: master.hostname, path: home, entries };
  }

  /** The tenant database, when this install made it (its comment). */
  private async backupDatabase({ install, master, dbServer }: RemovalContext, dir: string, io: StepIO): Promise<BackupContents['database']> {
    if (!dbServer) return { skipped: 'no database server' };
    const owner = await this.dumps.databaseOwner(dbServer, install.dbName, install.id);
    if (owner === 'absent') return { skipped: `no database ${install.dbName} on ${dbServer.hostname}` };
    if (owner === 'foreign') {
      io.log(`database ${install.dbName} on ${dbServer.hostname} was not made by this install: not backed up, and it will not be dropped`);
      return { skipped: `${install.dbName} was not made by this install` };
    }
    await this.dumps.dump(dbServer, install.dbName, { server: master, path: posix.join(dir, DATABASE_DUMP) });
    io.log(`database ${install.dbName} dumped from ${dbServer.hostname}`);
    return { server: dbServer.hostname, name: install.dbName, user: install.dbUser };
  }

  /** Each site's certificate and key, from the first of the install's servers that has them. */
  private async backupCertificates({ sites, servers, master }: RemovalContext, dir: string, io: StepIO): Promise<BackupCertificate[]> {
    const out: BackupCertificate[] = [];
    const executor = this.access.executorFor(master);
    for (const site of sites.filter((s) => s.sslPemPath && s.sslKeyPath)) {
      let taken: { pem: Buffer; key: Buffer } | null = null;
      const holders: number[] = [];
      for (const server of servers.filter((s) => s.state !== 'down')) {
        const paths = [site.sslPemPath!, site.sslKeyPath!];
        if (!paths.every((p) => isInside(server.certsRoot, p))) continue;
        const there = this.access.executorFor(server);
        if (!(await there.exists(server, paths[0]!)) || !(await there.exists(server, paths[1]!))) continue;
        holders.push(server.id);
        taken ??= { pem: await there.readFile(server, paths[0]!), key: await there.readFile(server, paths[1]!) };
      }
      if (!taken) {
        io.log(`the certificate of ${site.hostname} (${site.sslPemPath}) is on none of the install's servers below their certs root: not backed up`);
        continue;
      }
      const pemFile = `cert-${site.id}.pem`;
      const keyFile = `cert-${site.id}.key`;
      await executor.writeFile(master, posix.join(dir, pemFile), taken.pem, { mode: 0o600 });
      await executor.writeFile(master, posix.join(dir, keyFile), taken.key, { mode: 0o600 });
      out.push({ siteId: site.id, pem: site.sslPemPath!, key: site.sslKeyPath!, pemFile, keyFile, servers: holders });
    }
    if (out.length > 0) io.log(`certificates of ${out.length} site(s)`);
    return out;
  }

  private async catalogRows({ install, sites, group, servers }: RemovalContext): Promise<BackupCatalog> {
    const m = this.dataSource.manager;
    const siteIds = sites.map((s) => s.id);
    const ips = siteIds.length
      ? await m
          .createQueryBuilder(InstallSiteIp, 'h')
          .innerJoin(ServerIp, 'ip', 'ip.id = h.serverIpId')
          .select(['h.installSiteId AS installSiteId', 'h.serverId AS serverId', 'h.serverIpId AS serverIpId', 'ip.ip AS ip', 'ip.kind AS kind', 'h.exclusiveIpId AS exclusiveIpId'])
          .where('h.installSiteId IN (:...ids)', { ids: siteIds })
          .getRawMany<{ installSiteId: number; serverId: number; serverIpId: number; ip: string; kind: string; exclusiveIpId: number | null }>()
      : [];
    const names = await m.find(SiteName, { where: { installId: install.id } });
    const rows = await m.find(InstallServer, { where: { installId: install.id }, order: { id: 'ASC' } });
    const ftp = await m.findOne(FtpAccount, { where: { installId: install.id } });
    const mounts = await m.find(StartupMount, { where: { installId: install.id } });
    const crons: BackupCatalog['crons'] = [];
    for (const server of servers.filter((s) => s.state !== 'down')) {
      const executor = this.access.executorFor(server);
      const file = cronFileOn(server, install);
      if (await executor.exists(server, file)) crons.push({ server: server.hostname, text: (await executor.readFile(server, file)).toString('utf8') });
    }
    return {
      install: { status: install.status, license: install.license, sharedCodeGroupId: install.sharedCodeGroupId, codeRevision: install.codeRevision, masterServerId: install.masterServerId, dbServerId: install.dbServerId },
      group: group ? { id: group.id, name: group.name, revision: group.revision } : null,
      sites: sites.map((s) => ({
        id: s.id, hostname: s.hostname, secureHostname: s.secureHostname, relUrl: s.relUrl, secureRelUrl: s.secureRelUrl, sslPemPath: s.sslPemPath, sslKeyPath: s.sslKeyPath,
        certSource: s.certSource, certSha256: s.certSha256, certNotAfter: s.certNotAfter ? s.certNotAfter.toISOString() : null,
      })),
      siteNames: names.map((n) => ({ installSiteId: n.installSiteId, name: n.name })),
      siteIps: ips.map((r) => ({ installSiteId: Number(r.installSiteId), serverId: Number(r.serverId), serverIpId: Number(r.serverIpId), ip: r.ip, kind: r.kind, exclusive: r.exclusiveIpId !== null })),
      servers: rows.map((r) => ({ serverId: r.serverId, role: r.role, weight: r.weight, poolPort: r.poolPort, state: r.state })),
      ftpAccount: ftp ? { userid: ftp.userid, passwd: ftp.passwd, uid: ftp.uid, gid: ftp.gid, homedir: ftp.homedir, shell: ftp.shell, enabled: ftp.enabled } : null,
      mounts: mounts.map((r) => ({ serverId: r.serverId, source: r.source, target: r.target })),
      crons,
    };
  }

  private async listFiles(server: Server, dir: string): Promise<BackupFile[]> {
    const out = await this.access.executorFor(server).mustRun(server, ['sh', '-c', 'cd -- "$1" && for f in *; do [ -f "$f" ] || continue; printf "%s\\t%s\\t" "$f" "$(stat -c %s -- "$f")"; sha256sum -- "$f" | cut -d" " -f1; done', 'list', dir], { timeoutMs: 10 * 60_000 });
    return out.split('\n').filter(Boolean).map((line) => {
      const [name, bytes, sha256] = line.split('\t');
      return { name: name!, bytes: Number(bytes), sha256: sha256! };
    });
  }

  /** The install's database password (its dump is restored with it, its accounts made again). */
  password(install: { dbPasswordEnc: string }): string {
    return decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
  }
}

/** Whether `path` lies strictly inside `root` (as text: the executor checks links on the server). */
export function isInside(root: string, path: string): boolean {
  const r = posix.normalize(root).replace(/\/+$/, '');
  return posix.isAbsolute(path) && !path.split('/').includes('..') && posix.normalize(path).startsWith(`${r}/`);
}
