import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import mysql from 'mysql2/promise';
import { freePort } from './free-port.js';
import { run, startFailure, startServerProcess, stopProcessTree, waitUntil } from './processes.js';
import { readTestbed, type MariadbServer } from './testbed.js';

const HOST = '127.0.0.1';
const ADMIN_USER = 'engine_admin';
// sun_path holds 108 bytes; a deep checkout can push the private dir past it.
const MAX_SOCKET_PATH_BYTES = 100;

/**
 * Starts a private MariaDB in `dir` (created): a fresh data directory, TCP on
 * 127.0.0.1 on a free port, no password-less accounts, and an admin user
 * `engine_admin@127.0.0.1` with every privilege and a random password.
 */
export async function startMariadb(dir: string): Promise<MariadbServer> {
  const dataDir = join(dir, 'data');
  const tmpDir = join(dir, 'tmp');
  const errorLog = join(dir, 'error.log');
  const outputLog = join(dir, 'mariadbd.log');
  await mkdir(dataDir, { recursive: true });
  await mkdir(tmpDir, { recursive: true });

  try {
    // --no-defaults on every MariaDB command: /etc/mysql must not apply.
    await run(
      'mariadb-install-db',
      [
        '--no-defaults',
        '--user=root',
        `--datadir=${dataDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
      ],
      { timeoutMs: 60_000 },
    );
  } catch (error) {
    throw startFailure('MariaDB', error, errorLog);
  }

  const socket = await socketPath(dir);
  const port = await freePort();
  const server = await startServerProcess(
    'mariadbd',
    [
      '--no-defaults',
      // Required when running as root; ignored (with a warning) otherwise.
      '--user=root',
      `--datadir=${dataDir}`,
      `--socket=${socket}`,
      `--port=${port}`,
      `--bind-address=${HOST}`,
      `--tmpdir=${tmpDir}`,
      `--log-error=${errorLog}`,
      '--skip-log-bin',
      // TCP clients from 127.0.0.1 then match user@'127.0.0.1', never a hostname.
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=128M',
      // Without /etc/mysql the server default is latin1; Debian's config,
      // and so production, uses utf8mb4.
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_general_ci',
    ],
    outputLog,
  );

  try {
    await waitUntil('mariadb-admin ping', () => ping(socket), { timeoutMs: 30_000, server });
    const adminPassword = randomSecret();
    await secure(socket, adminPassword);
    const mariadb: MariadbServer = {
      host: HOST,
      port,
      socket,
      adminUser: ADMIN_USER,
      adminPassword,
      pid: server.pid,
    };
    await checkAdminLogin(mariadb);
    return mariadb;
  } catch (error) {
    await stopProcessTree(server.pid, socket);
    if (!socket.startsWith(`${dir}/`)) await rm(dirname(socket), { recursive: true, force: true });
    throw startFailure('MariaDB', error, errorLog, outputLog);
  }
}

/** Stops the server started by startMariadb (SIGTERM, then SIGKILL). */
export async function stopMariadb(mariadb: MariadbServer): Promise<void> {
  // A clean InnoDB shutdown takes a moment; give it longer than the default.
  await stopProcessTree(mariadb.pid, mariadb.socket, 20_000);
}

/** A database of its own for one test file. */
export interface TestDatabase {
  name: string;
  /** `mysql://engine_admin:PASSWORD@127.0.0.1:PORT/NAME`, password URL-encoded. */
  url: string;
  /** Drops the database; safe to call twice. */
  drop(): Promise<void>;
}

/**
 * Creates a uniquely named database (`<prefix>_<random hex>`) on the
 * testbed's MariaDB, so test files can run in parallel.
 */
export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  // The name is interpolated into DDL: allow only what needs no quoting rules.
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(prefix)) {
    throw new Error(
      `createTestDatabase: prefix "${prefix}" must be 1-41 characters of [a-z0-9_], starting with a letter`,
    );
  }
  const { mariadb } = readTestbed();
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await adminQuery(mariadb, `CREATE DATABASE \`${name}\``);
  const credentials = `${encodeURIComponent(mariadb.adminUser)}:${encodeURIComponent(mariadb.adminPassword)}`;
  return {
    name,
    url: `mysql://${credentials}@${mariadb.host}:${mariadb.port}/${name}`,
    drop: () => adminQuery(mariadb, `DROP DATABASE IF EXISTS \`${name}\``),
  };
}

async function adminQuery(mariadb: MariadbServer, sql: string): Promise<void> {
  const connection = await mysql.createConnection({
    host: mariadb.host,
    port: mariadb.port,
    user: mariadb.adminUser,
    password: mariadb.adminPassword,
    connectTimeout: 10_000,
  });
  try {
    await connection.query({ sql, timeout: 30_000 });
  } finally {
    await connection.end();
  }
}

function ping(socket: string): Promise<string> {
  return run(
    'mariadb-admin',
    ['--no-defaults', `--socket=${socket}`, '-uroot', '--connect-timeout=2', 'ping'],
    { timeoutMs: 5_000 },
  );
}

/**
 * mariadb-install-db leaves password-less root accounts for every local
 * address; the tests connect only as the admin user, so root keeps just the
 * socket account, with a password nobody records.
 */
async function secure(socket: string, adminPassword: string): Promise<void> {
  const hosts = ['127.0.0.1', '::1', hostname()].filter((host) => host !== 'localhost');
  const sql = [
    `DROP USER IF EXISTS ${hosts.map((host) => `'root'@${sqlString(host)}`).join(', ')};`,
    `DROP USER IF EXISTS ''@'localhost', ''@${sqlString(hostname())};`,
    `ALTER USER 'root'@'localhost' IDENTIFIED BY ${sqlString(randomSecret())};`,
    `CREATE USER '${ADMIN_USER}'@'${HOST}' IDENTIFIED BY ${sqlString(adminPassword)};`,
    // Tests create and drop databases and the users the engine provisions.
    `GRANT ALL PRIVILEGES ON *.* TO '${ADMIN_USER}'@'${HOST}' WITH GRANT OPTION;`,
  ].join('\n');
  // SQL on stdin: it holds passwords, which must not show in ps or errors.
  await run('mariadb', ['--no-defaults', `--socket=${socket}`, '-uroot', '--batch'], {
    input: sql,
    timeoutMs: 30_000,
  });
}

async function checkAdminLogin(mariadb: MariadbServer): Promise<void> {
  const currentUser = await run(
    'mariadb',
    [
      '--no-defaults',
      '--protocol=TCP',
      `--host=${mariadb.host}`,
      `--port=${mariadb.port}`,
      `--user=${mariadb.adminUser}`,
      '--batch',
      '--skip-column-names',
    ],
    { input: 'SELECT CURRENT_USER();', env: { ...process.env, MYSQL_PWD: mariadb.adminPassword } },
  );
  if (currentUser.trim() !== `${ADMIN_USER}@${HOST}`) {
    throw new Error(`admin login over TCP matched ${currentUser.trim()}, expected ${ADMIN_USER}@${HOST}`);
  }
}

async function socketPath(dir: string): Promise<string> {
  const inDir = join(dir, 'mariadb.sock');
  if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH_BYTES) return inDir;
  // Global teardown removes this directory too (it is the socket's parent).
  return join(await mkdtemp(join(tmpdir(), 'testbed-mariadb-')), 'mariadb.sock');
}

function randomSecret(): string {
  // base64url: no quotes or backslashes, so safe inside SQL string literals.
  return randomBytes(18).toString('base64url');
}

function sqlString(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}
