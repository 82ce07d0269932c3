import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Install, Server } from '@app/catalog';
import { buildSampleRepository, type SampleRepository } from '@app/codebases';
import { installUserComment, phpUserOf, poolSocketOf } from '@app/webserver';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, ownInstallIds, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { fastcgi } from '../support/fastcgi.js';
import { startHandlerFpm, stopHandlerFpm, type HandlerFpm } from '../support/handler-fpm.js';
import { startNginx, stopNginx } from '../support/nginx.js';
import { eventually } from '../support/queue-context.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { writeDbOptionsFile } from '../support/tenant-db-server.js';
import { readTestbed, type NginxServer, type SshdServer } from '../support/testbed.js';
import { fetchSite } from '../support/web-installs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/** What the attacker's script, run in one install's pool, reports (see ATTACK). */
interface Attack {
  whoami: string;
  ownConfig: boolean;
  otherConfig: boolean | string;
  otherConfigError: string;
  otherDb: string;
  ownDb: string;
  wrote: boolean;
  wroteOther: boolean;
  listOther: boolean;
  useCwd: string;
  validateRoot: string;
}

/**
 * A script a tenant uploaded (over FTP, into its writable uploads) and got
 * run in its pool: it tries the other tenant's config file and database
 * (with the names an attacker can guess from the other shop's hostname and
 * its own password as a guess), and writes a file of its own.
 */
const ATTACK = `<?php
header('Content-Type: application/json');
$me = posix_getpwuid(posix_geteuid())['name'];
$own = @file_get_contents($_SERVER['OWN_CONFIG']);
$warnings = [];
set_error_handler(function ($no, $message) use (&$warnings) { $warnings[] = $message; return true; });
$other = file_get_contents($_SERVER['OTHER_CONFIG']);
restore_error_handler();
$otherError = implode(' | ', $warnings);
$ownConfig = require $_SERVER['OWN_CONFIG'];
try { new PDO($_SERVER['OTHER_DSN'], $_SERVER['OTHER_USER'], $ownConfig['db_password']); $otherDb = 'connected'; } catch (PDOException $e) { $otherDb = $e->getMessage(); }
try { (new PDO($ownConfig['db_dsn'], $ownConfig['db_user'], $ownConfig['db_password']))->query('SELECT 1'); $ownDb = 'connected'; } catch (PDOException $e) { $ownDb = $e->getMessage(); }
$wrote = @file_put_contents(__DIR__ . '/written-by-php.txt', 'mine') !== false;
$wroteOther = @file_put_contents($_SERVER['OTHER_UPLOADS'] . '/planted.txt', 'yours') !== false;
$listOther = @scandir($_SERVER['OTHER_UPLOADS']) !== false;
echo json_encode(['whoami' => $me, 'ownConfig' => $own !== false, 'otherConfig' => $other === false ? false : $other, 'otherConfigError' => $otherError, 'otherDb' => $otherDb, 'ownDb' => $ownDb,
  'wrote' => $wrote, 'wroteOther' => $wroteOther, 'listOther' => $listOther, 'useCwd' => ini_get('opcache.use_cwd'), 'validateRoot' => ini_get('opcache.validate_root')]);
`;

/**
 * Issue 15's isolation: two shops built by the engine on one dispatcher
 * whose PHP it manages (a real php-fpm master running as root, one pool per
 * install as the install's own system user, nginx in front), over SSH, with
 * MariaDB. Code running in one shop's pool cannot read the other's config
 * file or reach its database, and what it writes is its own user's.
 */
describe('tenant isolation on a managed PHP handler (SSH dispatcher, php-fpm as root, nginx, MariaDB)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let smtp: TestSmtp;
  let repo: SampleRepository;
  let base: string;
  let nginx: NginxServer;
  let fpm: HandlerFpm;
  let admin: string;
  let orders: string;
  const ids: Record<string, number> = {};
  const installs: Install[] = [];

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const dir = (...parts: string[]) => {
    const p = join(base, ...parts);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const ssh = (sshd: SshdServer) => ({ transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint });
  const ds = () => engine.app.get(DataSource);
  const settled = (id: number) =>
    eventually(async () => {
      const view = await json(await call(admin, 'GET', `/v1/installs/${id}`));
      return view.status === 'live' || view.status === 'failed' ? view : null;
    }, 120_000, `install ${id} to settle`);
  const user = (install: Install) => {
    const line = execFileSync('getent', ['passwd', phpUserOf(install)], { encoding: 'utf8' }).trim().split(':');
    return { uid: Number(line[2]), gid: Number(line[3]), comment: line[4] };
  };

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'php-isolation-e2e-'));
    chmodSync(base, 0o755);
    [catalog, repo, smtp] = await Promise.all([createTestCatalog('mariadb', 'php_isolation_e2e'), buildSampleRepository(join(base, 'repo')), startSmtp()]);
    const roots = { homeRoot: dir('d1/srv/home'), sharedCodeRoot: dir('d1/srv/shared_codes'), nginxConfDir: dir('d1/srv/nginx'), cronDir: dir('d1/srv/cron.d'), certsRoot: dir('d1/srv/certs'), phpFpmPoolDir: dir('d1/srv/php-fpm') };
    [nginx, fpm] = await Promise.all([startNginx(join(base, 'web-d1', 'nginx'), { include: [join(roots.nginxConfDir, 'current/*.conf')] }), startHandlerFpm(join(base, 'web-d1', 'fpm'), roots.phpFpmPoolDir)]);
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker', SMTP_URL: smtp.url }));
    // Install ids (and so the users shop<id> made on this machine) in this file's own range.
    await ownInstallIds(ds(), 107001);
    const tokens = engine.app.get(ApiTokensService);
    admin = (await tokens.issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    orders = (await tokens.issue('storefront', ['orders'], { actor: 'test', via: 'cli' })).token;
    const add = async (name: string, body: object) => {
      const res = await call(admin, 'POST', '/v1/servers', body);
      expect({ status: res.status, body: res.status === 201 ? null : await json(res) }).toEqual({ status: 201, body: null });
      ids[name] = (await json(res)).id;
    };
    await add('d1', {
      hostname: 'iso-d1.example.net', roles: ['dispatcher', 'handler'], privateIp: '127.0.107.200', ...ssh(readTestbed().sshd), ...roots,
      nginxPidFile: join(nginx.prefix, 'nginx.pid'), phpFpmPidFile: fpm.pidFile,
    });
    await add('db', { hostname: 'iso-db.example.net', roles: ['database'], privateIp: '127.0.0.1', transport: 'local', homeRoot: dir('db/home'), sharedCodeRoot: dir('db/shared'), nginxConfDir: dir('db/nginx'), cronDir: dir('db/cron'), certsRoot: dir('db/certs'), dbOptionsFile: writeDbOptionsFile(base) });
    expect((await call(admin, 'POST', `/v1/servers/${ids.d1}/ips`, { ips: ['127.0.107.1'], kind: 'shared' })).status).toBe(201);
    const group = await json(await call(admin, 'POST', '/v1/code-groups', { name: 'free-1', tier: 'free', repoUrl: repo.path, revision: repo.revisions[1], masterServerId: ids.d1, installLimit: 5 }));
    await eventually(async () => (await json(await call(admin, 'GET', `/v1/code-groups/${group.group.id}`))).state === 'ready', 120_000, 'the code group ready');

    for (const [ref, hostname] of [['ISO-1', 'alpha-shop.example.com'], ['ISO-2', 'beta-shop.example.com']] as const) {
      const res = await call(orders, 'POST', '/v1/installs', { orderRef: ref, customerEmail: `owner@${hostname}`, license: 'free', sites: [{ hostname }] });
      expect(res.status).toBe(202);
      const view = await settled((await json(res)).installId);
      expect({ status: view.status, reason: view.statusReason }).toEqual({ status: 'live', reason: null });
      installs.push(await ds().getRepository(Install).findOneByOrFail({ id: view.id }));
    }
  }, 300_000);

  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    await smtp?.stop();
    await Promise.allSettled([nginx && stopNginx(nginx), fpm && stopHandlerFpm(fpm)]);
    // The accounts the builds made on this machine (the SSH dispatcher is this machine).
    for (const install of installs) execFileSync('sh', ['-c', `userdel --force ${phpUserOf(install)} 2>/dev/null; true`]);
    rmSync(base, { recursive: true, force: true });
  });

  it('gives each install its own system user, pool and file ownership', async () => {
    const d1 = await ds().getRepository(Server).findOneByOrFail({ id: ids.d1 });
    for (const install of installs) {
      const account = user(install);
      expect(account.comment).toBe(installUserComment(install));
      const home = join(d1.homeRoot, install.fsName);
      // The config file (the database password): root's, readable by the install's group alone.
      const config = statSync(join(home, 'heavymetal/config.php'));
      expect({ uid: config.uid, gid: config.gid, mode: config.mode & 0o7777 }).toEqual({ uid: 0, gid: account.gid, mode: 0o640 });
      // Writable dirs: the install's user, nginx's group (setgid), nobody else.
      const uploads = statSync(join(home, 'html/mas_assets/uploads'));
      expect({ uid: uploads.uid, mode: uploads.mode & 0o7777 }).toEqual({ uid: account.uid, mode: 0o2770 });
      expect(uploads.gid).toBe(Number(execFileSync('getent', ['group', 'www-data'], { encoding: 'utf8' }).split(':')[2]));
      // Its own pool, as its own user, on a socket nginx's user may use.
      const pool = readFileSync(join(d1.phpFpmPoolDir!, 'current', `${install.fsName}.conf`), 'utf8');
      expect(pool).toMatch(new RegExp(`^user = ${phpUserOf(install)}$`, 'm'));
      expect(pool).toMatch(/^pm = ondemand$/m);
      const socket = statSync(poolSocketOf(d1, install));
      expect(socket.isSocket()).toBe(true);
      // The crons run as it.
      expect(readFileSync(join(d1.cronDir, `shop-${install.fsName}`), 'utf8')).toContain(` ${phpUserOf(install)} cd `);
      // And the shop answers through nginx from its pool.
      const answer = await fetchSite('127.0.107.1', `${install.fsName === installs[0]!.fsName ? 'alpha' : 'beta'}-shop.example.com`, '/');
      expect(answer).toMatchObject({ status: 200, body: expect.stringContaining('Welcome; enjoy the shop') });
    }
  });

  it('keeps code running in one pool out of the other install\'s config, database and files', async () => {
    const d1 = await ds().getRepository(Server).findOneByOrFail({ id: ids.d1 });
    const [alpha, beta] = installs as [Install, Install];
    const home = (i: Install) => join(d1.homeRoot, i.fsName);
    // Uploaded over FTP into alpha's writable uploads (alpha's file), and run by a hole in alpha's shop.
    const script = join(home(alpha), 'html/mas_assets/uploads/attack.php');
    writeFileSync(script, ATTACK, { mode: 0o644 });
    chownSync(script, user(alpha).uid, user(alpha).gid);
    const answer = await fastcgi({ path: poolSocketOf(d1, alpha) }, script, {
      OWN_CONFIG: join(home(alpha), 'heavymetal/config.php'),
      OTHER_CONFIG: join(home(beta), 'heavymetal/config.php'),
      OTHER_DSN: `mysql:host=127.0.0.1;port=${readTestbed().mariadb.port};dbname=${beta.dbName}`,
      OTHER_USER: beta.dbUser,
      OTHER_UPLOADS: join(home(beta), 'html/mas_assets/uploads'),
    });
    const report = JSON.parse(answer.body) as Attack;
    expect(report.whoami).toBe(phpUserOf(alpha));
    expect(report.ownConfig).toBe(true);
    expect(report.ownDb).toBe('connected');
    // The other shop's config: outside alpha's open_basedir, and unreadable to alpha's user anyway.
    expect(report.otherConfig).toBe(false);
    expect(report.otherConfigError).toMatch(/open_basedir/);
    expect(report.otherDb).toMatch(/Access denied/);
    expect(report.wroteOther).toBe(false);
    expect(report.listOther).toBe(false);
    expect(existsSync(join(home(beta), 'html/mas_assets/uploads/planted.txt'))).toBe(false);
    // What alpha's PHP writes is alpha's.
    expect(report.wrote).toBe(true);
    expect(statSync(join(home(alpha), 'html/mas_assets/uploads/written-by-php.txt')).uid).toBe(user(alpha).uid);
    // Tenants sharing one master never share compiled scripts by relative path.
    expect({ useCwd: report.useCwd, validateRoot: report.validateRoot }).toEqual({ useCwd: '1', validateRoot: '1' });
    // Without open_basedir, the file's mode alone still keeps beta's config from alpha's user.
    expect(execFileSync('su', ['-s', '/bin/sh', phpUserOf(alpha), '-c', `cat ${join(home(beta), 'heavymetal/config.php')} >/dev/null 2>&1 && echo read || echo denied`], { encoding: 'utf8' }).trim()).toBe('denied');
  });
});
