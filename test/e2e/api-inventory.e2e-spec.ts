import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiTokensService } from '@app/auth';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { readTestbed } from '../support/testbed.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = async (res: Response): Promise<any> => res.json();

/**
 * The inventory's rules hold for a patch as for an addition: the server as
 * it would be after the patch is checked whole. Outside the embedded default
 * and without ALLOW_LOCAL_TRANSPORT, no server runs commands on the engine
 * machine; roots never hold one another.
 */
describe('server inventory rules on a MariaDB catalog without ALLOW_LOCAL_TRANSPORT', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let token: string;
  let base: string;

  beforeAll(async () => {
    catalog = await createTestCatalog('mariadb', 'api_inventory');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api', ALLOW_LOCAL_TRANSPORT: 'false' }));
    token = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], { actor: 'test', via: 'cli' })).token;
    base = mkdtempSync(join(tmpdir(), 'api-inventory-'));
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const call = (method: string, path: string, body?: unknown) =>
    fetch(`${engine.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const roots = (name: string) => {
    const dir = (r: string) => {
      const p = join(base, name, r);
      mkdirSync(p, { recursive: true });
      return p;
    };
    return { homeRoot: dir('home'), sharedCodeRoot: dir('shared_codes'), nginxConfDir: dir('nginx'), cronDir: dir('cron.d'), certsRoot: dir('certs') };
  };
  const ssh = () => {
    const { sshd } = readTestbed();
    return { transport: 'ssh', sshHost: sshd.host, sshPort: sshd.port, sshUser: sshd.user, sshKeyRef: sshd.privateKeyPath, sshHostKey: sshd.hostKeyFingerprint };
  };
  const fieldsOf = async (res: Response) => ((await json(res)).details.fields as { field: string; problems: string[] }[]) ?? [];

  it('checks the SSH fields of a patch that does not name the transport, leaving the server as it was', async () => {
    const created = await call('POST', '/v1/servers', { hostname: 'patch1.example.net', roles: ['handler'], ...ssh(), ...roots('patch1') });
    expect(created.status).toBe(201);
    const server = await json(created);
    for (const [patch, field] of [
      [{ sshHost: '$(id)' }, 'sshHost'],
      [{ sshUser: 'Root Admin' }, 'sshUser'],
      [{ sshHostKey: null }, 'sshHostKey'],
      [{ sshHost: null }, 'sshHost'],
      [{ homeRoot: null }, 'homeRoot'],
    ] as const) {
      const res = await call('PATCH', `/v1/servers/${server.id}`, patch);
      expect({ patch, status: res.status }).toEqual({ patch, status: 400 });
      expect((await fieldsOf(res)).map((f) => f.field)).toContain(field);
    }
    expect(await json(await call('GET', `/v1/servers/${server.id}`))).toEqual(server);

    const drained = await call('PATCH', `/v1/servers/${server.id}`, { state: 'draining', hostname: 'Patch1b.Example.NET.' });
    expect(drained.status).toBe(200);
    expect(await json(drained)).toMatchObject({ state: 'draining', hostname: 'patch1b.example.net', sshHost: server.sshHost });
  });

  it('refuses transport local outside the embedded default unless ALLOW_LOCAL_TRANSPORT, on addition and patch', async () => {
    const before = (await json(await call('GET', '/v1/servers'))).length;
    const local = await call('POST', '/v1/servers', { hostname: 'local9.example.net', roles: ['handler'], transport: 'local', ...roots('local9') });
    expect(local.status).toBe(400);
    const error = await json(local);
    expect(error.code).toBe('LOCAL_TRANSPORT_NOT_ALLOWED');
    expect(error.message).toContain('ALLOW_LOCAL_TRANSPORT=true');
    expect((await json(await call('GET', '/v1/servers'))).length).toBe(before);

    const server = await json(await call('POST', '/v1/servers', { hostname: 'patch2.example.net', roles: ['handler'], ...ssh(), ...roots('patch2') }));
    const turned = await call('PATCH', `/v1/servers/${server.id}`, { transport: 'local' });
    expect(turned.status).toBe(400);
    expect((await json(turned)).code).toBe('LOCAL_TRANSPORT_NOT_ALLOWED');
    expect((await json(await call('GET', `/v1/servers/${server.id}`))).transport).toBe('ssh');
  });

  it('refuses roots that are /, not in normal form, equal, or inside one another, naming both', async () => {
    const before = (await json(await call('GET', '/v1/servers'))).length;
    const r = roots('overlap');
    const cases: [object, string, RegExp][] = [
      // An order named "certs" would have become the certificates root.
      [{ certsRoot: join(r.homeRoot, 'certs') }, 'certsRoot', new RegExp(`certsRoot ${r.homeRoot}/certs lies inside homeRoot ${r.homeRoot}`)],
      [{ sharedCodeRoot: base }, 'sharedCodeRoot', new RegExp(`sharedCodeRoot ${base} contains homeRoot`)],
      [{ cronDir: r.nginxConfDir }, 'cronDir', /cronDir is the same directory as nginxConfDir/],
      [{ phpFpmPoolDir: join(r.nginxConfDir, 'pool.d') }, 'phpFpmPoolDir', /phpFpmPoolDir .* lies inside nginxConfDir/],
      [{ homeRoot: '/' }, 'homeRoot', /homeRoot must not be \/ itself/],
      [{ homeRoot: `${r.homeRoot}/` }, 'homeRoot', /homeRoot must be written in normal form/],
      [{ homeRoot: r.homeRoot.replace('/home', '//home') }, 'homeRoot', /homeRoot must be written in normal form/],
    ];
    for (const [override, field, message] of cases) {
      const res = await call('POST', '/v1/servers', { hostname: 'roots.example.net', roles: ['dispatcher'], ...ssh(), ...r, ...override });
      expect({ override, status: res.status }).toEqual({ override, status: 400 });
      const fields = await fieldsOf(res);
      expect(fields.find((f) => f.field === field)?.problems.join(' ')).toMatch(message);
    }
    expect((await json(await call('GET', '/v1/servers'))).length).toBe(before);

    const server = await json(await call('POST', '/v1/servers', { hostname: 'roots.example.net', roles: ['dispatcher'], ...ssh(), ...r }));
    const moved = await call('PATCH', `/v1/servers/${server.id}`, { certsRoot: join(r.homeRoot, 'certs') });
    expect(moved.status).toBe(400);
    expect((await json(moved)).message).toContain(`certsRoot ${r.homeRoot}/certs lies inside homeRoot ${r.homeRoot}`);
    const movedHome = await call('PATCH', `/v1/servers/${server.id}`, { homeRoot: join(r.certsRoot, 'home') });
    expect(movedHome.status).toBe(400);
    expect((await json(movedHome)).message).toContain(`homeRoot ${r.certsRoot}/home lies inside certsRoot ${r.certsRoot}`);
    expect((await json(await call('GET', `/v1/servers/${server.id}`))).certsRoot).toBe(r.certsRoot);
  });
});
