import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In } from 'typeorm';
import { Install, Server, SharedCodeGroup } from '@app/catalog';
import { parseManifest, type ManifestSearch, type CodebaseManifest } from '@app/codebases';
import { registerSecrets } from '@app/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { prepareSql, TenantDatabases, type DatabaseConnection } from '@app/databases';
import { checkServerPath, ServerAccess } from '@app/hosts';
import { decryptSecret } from '@app/installs';
import { searchReader } from './search-reader.js';
import {
  blockDigest,
  confPath,
  dataPath,
  indexBlocks,
  indexerOutcome,
  indexName,
  parseIndexedState,
  pidPath,
  renderIndexBlock,
  renderSphinxConf,
  SEARCH_DIR_NAME,
  statePath,
  type IndexedState,
  type SphinxLayout,
} from './sphinx-conf.js';

/** An index not rebuilt for this long is rebuilt (new products reach the index at least this often), unless the manifest says otherwise. */
export const DEFAULT_REFRESH_MINUTES = 1440;
const INDEXER_TIMEOUT_MS = 30 * 60_000;

/** What one run did on one search server. */
export interface SearchServerRun {
  server: string;
  indexes: number;
  confWritten: boolean;
  built: string[];
  failed: { index: string; problem: string }[];
  removed: string[];
}

type Log = (line: string) => void;

/**
 * The search indexes (the seed's sphinx cron): every server with the roles
 * `database` and `search` runs searchd for the live installs whose
 * databases it holds and whose code group's manifest has a `search`
 * section. Each run renders the server's sphinx.conf from the catalog,
 * writes it only when it changed (atomically), makes the read-only account
 * of each new or changed index, runs `indexer --rotate` for those indexes
 * only (and for those older than the manifest's `refreshMinutes`), and takes away the
 * indexes of installs that went: their block, their files, their account.
 * What was built from which block is kept beside the config (indexed.json),
 * so an index whose build failed is tried again next run.
 */
@Injectable()
export class SearchIndexes {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly tenants: TenantDatabases,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {}

  /** `<home root>/.search`; SphinxQL on 127.0.0.1 and on the private IP (where the shops on other servers reach it, as they reach the database). */
  layoutOf(server: Server): SphinxLayout {
    const port = this.config.searchPort;
    const ips = ['127.0.0.1', ...(server.privateIp && /^\d{1,3}(\.\d{1,3}){3}$/.test(server.privateIp) ? [server.privateIp] : [])];
    return { dir: `${server.homeRoot.replace(/\/+$/, '')}/${SEARCH_DIR_NAME}`, listen: [...new Set(ips)].map((ip) => `${ip}:${port}`) };
  }

  /** One run over every search server; one server failing does not stop the others (the run fails at the end, naming it). */
  async apply(options: { log?: Log; now?: Date } = {}): Promise<SearchServerRun[]> {
    const log = options.log ?? (() => undefined);
    const all = await this.dataSource.getRepository(Server).find({ order: { id: 'ASC' } });
    // searchd indexes the databases a server holds: `search` means something on a database server only.
    for (const s of all.filter((s) => s.roles.includes('search') && !s.roles.includes('database'))) log(`${s.hostname}: has the search role but not database: ignored`);
    const servers = all.filter((s) => s.roles.includes('search') && s.roles.includes('database') && s.state !== 'down');
    const runs: SearchServerRun[] = [];
    const failures: string[] = [];
    for (const server of servers) {
      try {
        const run = await this.applyServer(server, log, options.now ?? new Date());
        runs.push(run);
        log(`${server.hostname}: ${run.indexes} index(es); config ${run.confWritten ? 'written' : 'unchanged'}; built ${run.built.join(', ') || 'none'}; removed ${run.removed.join(', ') || 'none'}${run.failed.length ? `; FAILED ${run.failed.map((f) => `${f.index} (${f.problem})`).join('; ')}` : ''}`);
        if (run.failed.length > 0) failures.push(`${server.hostname}: ${run.failed.map((f) => f.index).join(', ')}`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        log(`${server.hostname}: ${message}`);
        failures.push(`${server.hostname}: ${message}`);
      }
    }
    if (failures.length > 0) throw new Error(`search indexes failed on ${failures.join('; ')}`);
    return runs;
  }

  private async applyServer(server: Server, log: Log, now: Date): Promise<SearchServerRun> {
    if (this.tenants.sqlite(server)) throw new Error('its tenant databases are SQLite files, which Sphinx cannot index');
    const exec = this.access.executorFor(server);
    const layout = this.layoutOf(server);
    await exec.mkdirs(server, [layout.dir, `${layout.dir}/data`, `${layout.dir}/log`], { mode: 0o750 });
    const connection = await this.tenants.connection(server);

    const oldConf = (await exec.exists(server, confPath(layout))) ? (await exec.readFile(server, confPath(layout))).toString() : '';
    const state = (await exec.exists(server, statePath(layout))) ? parseIndexedState((await exec.readFile(server, statePath(layout))).toString()) : {};
    const oldBlocks = indexBlocks(oldConf);
    const { blocks, readers, refreshMs } = await this.wantedBlocks(server, layout, connection, oldBlocks, log);

    const stale = (name: string) => {
      const entry = state[name];
      return !entry || entry.digest !== blockDigest(blocks.get(name)!) || now.getTime() - Date.parse(entry.at) >= (refreshMs.get(name) ?? DEFAULT_REFRESH_MINUTES * 60_000);
    };
    const toBuild = [...blocks.keys()].filter(stale);
    const removed = [...new Set([...oldBlocks.keys(), ...Object.keys(state)])].filter((name) => !blocks.has(name));

    // The accounts first: the indexer connects with them.
    const failed = new Map<string, string>();
    for (const name of toBuild) {
      const reader = readers.get(name);
      if (!reader) continue;
      try {
        await this.tenants.createUser(server, reader.login, reader.database, [connection.localHost], { readOnly: true });
      } catch (error) {
        failed.set(name, `its read-only account: ${error instanceof Error ? error.message : String(error)}`);
      }
    }

    const conf = renderSphinxConf(layout, blocks);
    const confWritten = conf !== oldConf;
    // The file holds the readers' passwords: root's only (searchd and indexer run as root and read it).
    if (confWritten) await exec.writeFile(server, confPath(layout), conf, { mode: 0o600 });

    const building = toBuild.filter((n) => !failed.has(n));
    const built: string[] = [];
    if (building.length > 0) {
      // --rotate: built as .new files, swapped in by searchd on SIGHUP (or when it starts, if it is not running).
      const result = await exec.run(server, ['indexer', '--config', confPath(layout), '--rotate', '--noprogress', ...building], { timeoutMs: INDEXER_TIMEOUT_MS });
      if (result.exitCode === 127) throw new Error('indexer is not installed (Debian package sphinxsearch)');
      const outcome = indexerOutcome(`${result.stdout}\n${result.stderr}`, building);
      for (const [name, problem] of outcome.failed) failed.set(name, problem);
      for (const name of outcome.built) state[name] = { digest: blockDigest(blocks.get(name)!), at: now.toISOString() };
      built.push(...outcome.built);
    } else if (confWritten && removed.length > 0) {
      // Nothing to rotate, but searchd must re-read the config to drop the removed indexes.
      await this.reload(server, layout);
    }

    for (const name of removed) {
      await this.removeIndexFiles(server, layout, name);
      await this.dropReader(server, connection, name, log);
      delete state[name];
    }
    for (const name of failed.keys()) delete state[name];
    const stateText = `${JSON.stringify(sortState(state), null, 1)}\n`;
    if (confWritten || built.length > 0 || removed.length > 0 || failed.size > 0) await exec.writeFile(server, statePath(layout), stateText, { mode: 0o600 });

    return { server: server.hostname, indexes: blocks.size, confWritten, built, failed: [...failed].map(([index, problem]) => ({ index, problem })), removed };
  }

  /**
   * The blocks the server should have: one per live install on it whose
   * group's manifest has `search`. An install whose manifest does not parse
   * (or whose password cannot be read) keeps the block it had: a bad
   * manifest never takes a shop's search away.
   */
  private async wantedBlocks(server: Server, layout: SphinxLayout, connection: DatabaseConnection, oldBlocks: Map<string, string>, log: Log) {
    const installs = await this.dataSource.getRepository(Install).find({ where: { dbServerId: server.id, status: 'live' }, order: { id: 'ASC' } });
    const groupIds = [...new Set(installs.map((i) => i.sharedCodeGroupId).filter((g): g is number => g !== null))];
    const groups = groupIds.length ? await this.dataSource.getRepository(SharedCodeGroup).find({ where: { id: In(groupIds) } }) : [];
    const manifests = new Map<number, CodebaseManifest | string>();
    for (const group of groups) {
      manifests.set(group.id, group.manifest ? await parseManifest(group.manifest).catch((e: unknown) => `the manifest of code group ${group.name} does not parse: ${e instanceof Error ? e.message : String(e)}`) : 'no manifest');
    }
    const blocks = new Map<string, string>();
    const readers = new Map<string, { login: { user: string; password: string }; database: string }>();
    const refreshMs = new Map<string, number>();
    for (const install of installs) {
      const name = indexName(install.fsName);
      const manifest = install.sharedCodeGroupId === null ? undefined : manifests.get(install.sharedCodeGroupId);
      if (typeof manifest === 'string') {
        const kept = oldBlocks.get(name);
        if (kept) {
          blocks.set(name, kept);
          log(`${name}: kept as it was: ${manifest}`);
        }
        continue;
      }
      if (!manifest?.search) continue;
      try {
        const password = decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
        const login = searchReader(install, password);
        registerSecrets(password, login.password);
        blocks.set(name, renderIndexBlock(layout, {
          name,
          host: connection.host,
          port: connection.port,
          socket: connection.socket,
          user: login.user,
          password: login.password,
          database: install.dbName,
          charset: manifest.sql?.session?.charset ?? 'utf8mb4',
          query: documentsQuery(manifest.search, manifest),
          attributes: manifest.search.attributes ?? [],
          stringFields: manifest.search.stringFields ?? [],
        }));
        readers.set(name, { login, database: install.dbName });
        refreshMs.set(name, (manifest.search.refreshMinutes ?? DEFAULT_REFRESH_MINUTES) * 60_000);
      } catch (error) {
        const kept = oldBlocks.get(name);
        if (kept) blocks.set(name, kept);
        log(`${name}: ${kept ? 'kept as it was' : 'skipped'}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return { blocks, readers, refreshMs };
  }

  /** The files of a removed index (`<name>.*`, the `.new` and `.old` ones of a rotation too), in one command; nothing else. */
  private async removeIndexFiles(server: Server, layout: SphinxLayout, name: string): Promise<void> {
    const dir = `${layout.dir}/data`;
    checkServerPath(server, dir);
    // Regular files directly in the data directory only: find never follows a link here (-P, the default) nor descends.
    await this.access.executorFor(server).mustRun(server, ['find', dir, '-maxdepth', '1', '-type', 'f', '-name', `${name}.*`, '-delete']);
  }

  /** Drops the removed install's read-only account, if it is the one the engine made (its derived password); another is left. */
  private async dropReader(server: Server, connection: DatabaseConnection, name: string, log: Log): Promise<void> {
    const install = await this.dataSource.getRepository(Install).findOneBy({ fsName: name.slice('idx_'.length) });
    if (!install) return;
    try {
      const password = decryptSecret(this.config.secretsKey, install.dbPasswordEnc);
      const login = searchReader(install, password);
      registerSecrets(password, login.password);
      const left = await this.tenants.dropUser(server, login, install.dbName, [connection.localHost]);
      if (left.length > 0) log(`${name}: ${left.join(', ')} is not the engine's: left as it is`);
    } catch (error) {
      log(`${name}: its read-only account was not dropped: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** SIGHUP to a running searchd (pid file under the layout's directory): it re-reads the config. Not running: nothing to do. */
  private async reload(server: Server, layout: SphinxLayout): Promise<void> {
    const exec = this.access.executorFor(server);
    if (!(await exec.exists(server, pidPath(layout)))) return;
    const pid = (await exec.readFile(server, pidPath(layout))).toString().trim();
    if (!/^[1-9]\d{0,9}$/.test(pid)) return;
    // A stale pid file: kill fails, and the next searchd start reads the config anyway.
    await exec.run(server, ['kill', '-HUP', pid]);
  }
}

/** The manifest's documents query as the install's database has it: the table prefix applied as for the SQL files. */
export function documentsQuery(search: ManifestSearch, manifest: Pick<CodebaseManifest, 'sql'>): string {
  return prepareSql(search.query, { tablePrefix: manifest.sql?.tablePrefix, session: manifest.sql?.session });
}

function sortState(state: IndexedState): IndexedState {
  return Object.fromEntries(Object.entries(state).sort(([a], [b]) => a.localeCompare(b)));
}
