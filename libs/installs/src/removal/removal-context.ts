import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { DataSource, In } from 'typeorm';
import { Install, InstallServer, InstallSite, Server, SharedCodeGroup } from '@app/catalog';
import type { BuildContext } from '../build-saga/build-context.js';

/** Statuses a removal may start from: a live shop, or the junk of a failed one. */
export const REMOVABLE_STATUSES = ['live', 'failed'] as const;
export type RemovableStatus = (typeof REMOVABLE_STATUSES)[number];

export interface RemoveInstallPayload {
  installId: number;
  /** The status the install had when the removal was asked for (a failed backup puts it back). */
  fromStatus: RemovableStatus;
  /** Who asked (kept for the audit event the job records). */
  actor: string;
  via: string;
}

/**
 * Everything a removal step needs, rebuilt from the catalog at every run.
 * Tolerates what a failed install lacks (no code group, no database server).
 */
export interface RemovalContext {
  install: Install;
  sites: InstallSite[];
  master: Server;
  /** Every server holding a copy of the install (master first; replicas and cloud handlers, whatever their state). */
  servers: Server[];
  dbServer: Server | null;
  group: SharedCodeGroup | null;
  /** The same install as the build's compensations read it (install, master, replicas, database server). */
  build: BuildContext;
  payload: RemoveInstallPayload;
  jobId: number | null;
}

/** Where the engine keeps an install's removal backups on a server: below the home root, in a dot-directory no fs name can be (fs names are letters and digits). */
export const BACKUPS_DIR = '.install-backups';
export const backupsRootOn = (server: Pick<Server, 'homeRoot'>) => posix.join(server.homeRoot, BACKUPS_DIR);
/** One backup's own directory: named from ids alone, never from order input. */
export const backupDirOn = (server: Pick<Server, 'homeRoot'>, installId: number, backupId: number) => posix.join(backupsRootOn(server), `install-${installId}-${backupId}`);

@Injectable()
export class RemovalContexts {
  constructor(private readonly dataSource: DataSource) {}

  async load(payload: RemoveInstallPayload, jobId: number | null): Promise<RemovalContext> {
    const m = this.dataSource.manager;
    const install = await m.findOneByOrFail(Install, { id: payload.installId });
    const rows = await m.find(InstallServer, { where: { installId: install.id }, order: { id: 'ASC' } });
    const ids = [...new Set([install.masterServerId!, ...rows.map((r) => r.serverId)])];
    const byId = new Map((await m.find(Server, { where: { id: In(ids) } })).map((s) => [s.id, s]));
    const servers = ids.map((id) => byId.get(id)).filter((s): s is Server => s !== undefined);
    const master = byId.get(install.masterServerId!)!;
    const dbServer = install.dbServerId === null ? null : await m.findOneBy(Server, { id: install.dbServerId });
    const group = install.sharedCodeGroupId === null ? null : await m.findOneBy(SharedCodeGroup, { id: install.sharedCodeGroupId });
    const sites = await m.find(InstallSite, { where: { installId: install.id }, order: { id: 'ASC' } });
    const replicas = servers.filter((s) => s.id !== master.id);
    // The build's compensations read only these fields; a failed install may have no group or manifest.
    const build = { install, sites, master, replicas, dbServer: dbServer!, siteIps: [], jobId, group: group!, revision: install.codeRevision ?? group?.revision ?? '', manifest: group?.manifest as never } as BuildContext;
    return { install, sites, master, servers, dbServer, group, build, payload, jobId };
  }
}
