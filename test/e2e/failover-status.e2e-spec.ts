import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ApiTokensService } from '@app/auth';
import { Server, ServerIp } from '@app/catalog';
import { recordIpActions, type IpRecord } from '@app/failover';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';

const by = { actor: 'test', via: 'cli' as const };

/**
 * Which node holds which floating IP, as operators see it: /health, GET
 * /v1/servers/:id/ips and /metrics, after ip-manager's records reach the
 * catalog (the network side is proven in floating-ip-failover.int-spec.ts).
 */
describe('floating IP holders in /health, the servers API and the metrics (SQLite)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let admin: string;
  const scratch = mkdtempSync(join(tmpdir(), 'failover-status-'));
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    catalog = await createTestCatalog('sqlite', 'failover_status');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api' }));
    admin = (await engine.app.get(ApiTokensService).issue('ops', ['admin'], by)).token;
    const ds = engine.app.get(DataSource);
    for (const name of ['d1', 'd2']) ids[name] = (await ds.getRepository(Server).save(testServer(join(scratch, name), `${name}.status.net`, ['dispatcher'], null))).id;
    await ds.getRepository(ServerIp).save({ serverId: ids.d1!, ip: '10.200.0.101', kind: 'floating', failoverGroup: 'carp1', activeServerId: ids.d1! });
    await ds.getRepository(ServerIp).save({ serverId: ids.d2!, ip: '10.200.0.111', kind: 'floating', failoverGroup: 'carp2', activeServerId: ids.d2! });
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const get = async (path: string) => {
    const res = await fetch(`${engine.url}${path}`, { headers: { authorization: `Bearer ${admin}` } });
    expect(res.status).toBe(200);
    return path === '/metrics' ? res.text() : res.json();
  };

  it('shows each IP with its owner up; after a takeover, d2 as the holder, /health degraded, and the takeover counted', async () => {
    let health = (await get('/health')) as { details: Record<string, Record<string, unknown>> };
    expect(health.details.floatingIps).toEqual({ status: 'up', floatingIps: 2, holders: '10.200.0.101 (carp1, d1.status.net): d1.status.net; 10.200.0.111 (carp2, d2.status.net): d2.status.net' });

    const at = new Date().toISOString();
    const record = (serverId: number, hostname: string, action: IpRecord['action'], event: IpRecord['event']): IpRecord => ({ at, serverId, hostname, group: 'carp1', event, ip: '10.200.0.101', action, holderServerId: action === 'taken' ? serverId : null, attempts: 1 });
    await recordIpActions(engine.app.get(DataSource), [record(ids.d1!, 'd1.status.net', 'released', 'STOP'), record(ids.d2!, 'd2.status.net', 'taken', 'MASTER')]);

    const ips = (await get(`/v1/servers/${ids.d1}/ips`)) as { ip: string; activeServerId: number | null }[];
    expect(ips).toEqual([expect.objectContaining({ ip: '10.200.0.101', kind: 'floating', failoverGroup: 'carp1', activeServerId: ids.d2 })]);
    health = (await get('/health')) as { details: Record<string, Record<string, unknown>> };
    expect(health.details.floatingIps).toMatchObject({ status: 'degraded', awayFromOwner: 1, holders: expect.stringContaining('10.200.0.101 (carp1, d1.status.net): d2.status.net') });
    const metrics = (await get('/metrics')) as string;
    expect(metrics).toMatch(/^shop_floating_ip_takeovers_total 1$/m);
    expect(metrics).toMatch(/^shop_floating_ips_held\{server="d2.status.net"\} 2$/m);
    const audit = (await get('/v1/audit?action=floating-ip.takeover')) as { events: { actor: string; targetType: string }[] };
    expect(audit.events).toEqual([expect.objectContaining({ actor: 'ip-manager@d2.status.net', targetType: 'server_ip' })]);
  });
});
