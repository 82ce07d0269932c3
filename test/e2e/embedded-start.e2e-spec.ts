import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, runCli, spawnEngine, type EngineProcess } from '../support/processes-engine.js';
import { fetchSite } from '../support/web-installs.js';
import { vhostOf } from '../support/nginx.js';

/**
 * `npm start` on a fresh machine: the built engine, started in an empty
 * directory with an empty environment, must come up on the embedded default.
 */
describe('the embedded default (npm start)', () => {
  let cwd: string;
  let engine: EngineProcess | undefined;

  beforeAll(() => {
    cwd = mkdtempSync(join(tmpdir(), 'embedded-'));
  });
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it('starts on SQLite with a local server, a generated key and a printed admin token', async () => {
    engine = await spawnEngine(cwd, cleanEnv({ PORT: '0' }));
    expect(engine.output()).toContain('SQLite at ./var/engine.sqlite');
    expect(engine.output()).toContain(`${engine.url}/docs`);

    const health = await fetch(`${engine.url}/health`);
    expect(health.status).toBe(200);
    const tokens = await fetch(`${engine.url}/v1/tokens`, { headers: { authorization: `Bearer ${engine.adminToken}` } });
    expect(tokens.status).toBe(200);

    expect(existsSync(join(cwd, 'var/engine.sqlite'))).toBe(true);
    expect(statSync(join(cwd, 'var/secrets.key')).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(cwd, 'var/hosts/local')).sort()).toEqual(
      ['certs', 'cron.d', 'home', 'nginx', 'php-fpm', 'shared_codes', 'web'].sort(),
    );
    // nginx and php-fpm are installed here (npm test installs them): the engine serves the local shops itself.
    expect(engine.output()).toMatch(/Shops {8}served by a private nginx and php-fpm on port \d+/);
    expect([0, 'SIGTERM']).toContain(await engine.stop());
    engine = undefined;
  });

  it('provisions the example order it prints, from the seeded sample code group, to live', async () => {
    engine = await spawnEngine(cwd, cleanEnv({ PORT: '0' }));
    const printed = /-d '(\{"orderRef".*\})' (http\S+\/v1\/installs)/.exec(engine.output());
    expect(printed).not.toBeNull();
    const headers = { authorization: `Bearer ${engine.adminToken}`, 'content-type': 'application/json' };
    const res = await fetch(printed![2]!, { method: 'POST', headers, body: printed![1] });
    expect(res.status).toBe(202);
    const { installId, statusUrl } = (await res.json()) as { installId: number; statusUrl: string };
    let view: { status: string; statusReason: string | null; fsName: string; steps: { name: string; state: string }[] } | undefined;
    for (let i = 0; i < 600 && !(view && ['live', 'failed'].includes(view.status)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      view = (await (await fetch(`${engine.url}${statusUrl}`, { headers })).json()) as typeof view;
    }
    expect({ status: view?.status, reason: view?.statusReason }).toEqual({ status: 'live', reason: null });
    expect(view!.steps.every((s) => s.state === 'done')).toBe(true);
    const home = join(cwd, 'var/hosts/local/home', view!.fsName);
    expect(readFileSync(join(home, 'heavymetal/config.php'), 'utf8')).toContain("'hostname' => 'demo-shop.example.com'");
    expect(vhostOf(join(cwd, 'var/hosts/local/nginx/current'), view!.fsName)).not.toBeNull();
    expect(existsSync(join(cwd, 'var/tenant-databases', `shop_${view!.fsName}.sqlite`))).toBe(true);
    expect(readdirSync(join(cwd, 'var/mail')).some((f) => f.includes(`install-${installId}-welcome`))).toBe(true);
    // The banner's last line fetches the shop through the private nginx: its front page reads its own (SQLite) database.
    const shop = /curl -s -H 'Host: ([^']+)' http:\/\/127\.0\.0\.1:(\d+)\//.exec(engine.output());
    expect(shop).not.toBeNull();
    const page = await fetchSite('127.0.0.1', shop![1]!, '/', { port: Number(shop![2]) });
    expect({ status: page.status, body: page.body }).toEqual({ status: 200, body: 'shop demo-shop.example.com: Welcome; enjoy the shop\n' });
  });

  it('prints a new admin token at the next start and revokes the old one', async () => {
    const first = await spawnEngine(cwd, cleanEnv({ PORT: '0' }));
    const oldToken = first.adminToken;
    await first.stop();

    engine = await spawnEngine(cwd, cleanEnv({ PORT: '0' }));
    expect(engine.adminToken).not.toBe(oldToken);
    const auth = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
    expect((await fetch(`${engine.url}/v1/tokens`, auth(oldToken))).status).toBe(401);
    expect((await fetch(`${engine.url}/v1/tokens`, auth(engine.adminToken))).status).toBe(200);
    await engine.stop();
    engine = undefined;

    // The CLI shares the catalog: one local server seeded once, old tokens revoked, not piled up.
    const list = await runCli(['token:list'], cwd, cleanEnv());
    expect(list.code).toBe(0);
    const rows = list.stdout.trim().split('\n').slice(1);
    expect(rows.filter((r) => r.includes('embedded-admin') && r.trimEnd().endsWith('-'))).toHaveLength(1);
  });

  it('refuses to boot on a bad environment, naming every bad key, and creates nothing', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'badenv-'));
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      spawnEngine(empty, cleanEnv({ PORT: 'eighty', ENGINE_ROLES: 'api,janitor', LOG_LEVEL: 'loud' }), 15_000)
        .then((e) => {
          void e.stop();
          reject(new Error('the engine started with a bad environment'));
        })
        .catch((error: Error) => resolve({ code: 1, stderr: error.message }));
    });
    expect(result.stderr).toContain('exited with 1');
    expect(result.stderr).toContain('PORT: must be an integer');
    expect(result.stderr).toContain('ENGINE_ROLES: unknown role(s) janitor');
    expect(result.stderr).toContain('LOG_LEVEL: must be one of');
    expect(readdirSync(empty)).toEqual([]);
    rmSync(empty, { recursive: true, force: true });
  });
});
