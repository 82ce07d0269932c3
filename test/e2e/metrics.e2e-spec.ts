import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { Server, ServerIp } from '@app/catalog';
import { ServerAccess } from '@app/hosts';
import { NOOP_JOB, QueueService } from '@app/queue';
import { startEngine, type RunningEngine } from '../../apps/engine/src/start-engine.js';
import { createTestCatalog, testEngineConfig, type TestCatalog } from '../support/catalog.js';
import { testServer } from '../support/server-roots.js';

const METRICS_TOKEN = 'scrape-token-0123456789abcdef';

/** The value of one sample of the exposition (`name{labels} value`), or null when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[4]);
  }
  return null;
}

/** GET /metrics: the engine's Prometheus metrics, from real requests, jobs, commands and catalog rows. */
describe('GET /metrics (MariaDB catalog, api + worker + cron)', () => {
  let catalog: TestCatalog;
  let engine: RunningEngine;
  let scratch: string;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'metrics-'));
    catalog = await createTestCatalog('mariadb', 'metrics');
    engine = await startEngine(testEngineConfig(catalog.url, { ENGINE_ROLES: 'api,worker,cron', METRICS_TOKEN }));
  });
  afterAll(async () => {
    await engine?.close();
    await catalog?.drop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const scrape = async (headers: Record<string, string> = {}) => fetch(`${engine.url}/metrics`, { headers });

  it('exports HTTP, job, command, catalog and process metrics in the Prometheus text format', async () => {
    const ds = engine.app.get(DataSource);
    const server = await ds.getRepository(Server).save(testServer(join(scratch, 'd1'), 'metrics-d1.example.net', ['dispatcher'], null));
    await ds.getRepository(ServerIp).save([
      { serverId: server.id, ip: '198.51.100.10', kind: 'dedicated' as const, failoverGroup: null, activeServerId: null },
      { serverId: server.id, ip: '198.51.100.11', kind: 'dedicated' as const, failoverGroup: null, activeServerId: null },
      { serverId: server.id, ip: '198.51.100.1', kind: 'shared' as const, failoverGroup: null, activeServerId: null },
    ]);
    expect((await fetch(`${engine.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${engine.url}/v1/installs/1`)).status).toBe(401);
    const { job } = await engine.app.get(QueueService).enqueue(NOOP_JOB, { note: 'metrics' });
    for (let i = 0; i < 100; i++) {
      const state = (await ds.query('SELECT state FROM jobs WHERE id = ?', [job.id]))[0]?.state;
      if (state === 'done') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await engine.app.get(ServerAccess).executorFor(server).run(server, ['true']);
    await engine.app.get(ServerAccess).executorFor(server).run(server, ['false']);

    // The cron role has scheduled the recurring tasks (their rows are what the task metrics read).
    for (let i = 0; i < 100 && (await ds.query("SELECT COUNT(*) AS n FROM recurring_tasks WHERE name = 'NginxReconcile'"))[0].n < 1; i++) await new Promise((r) => setTimeout(r, 100));
    const res = await scrape();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(sample(text, 'shop_http_requests_total', { method: 'GET', route: '/health/live', status: '200' })).toBe(1);
    // The route's pattern, never the raw path (one series per install would be unbounded).
    expect(sample(text, 'shop_http_requests_total', { method: 'GET', route: '/v1/installs/:id', status: '401' })).toBe(1);
    expect(text).not.toContain('/v1/installs/1"');
    expect(sample(text, 'shop_job_duration_seconds_count', { kind: 'engine.noop', outcome: 'done' })).toBe(1);
    expect(sample(text, 'shop_jobs', { state: 'done' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'shop_jobs_oldest_due_age_seconds')).toBeLessThanOrEqual(1);
    // At least ours: the recurring tasks of the cron role run commands on the dispatcher too.
    expect(sample(text, 'shop_server_command_duration_seconds_count', { server: 'metrics-d1.example.net', transport: 'local', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'shop_server_command_duration_seconds_count', { server: 'metrics-d1.example.net', transport: 'local', outcome: 'failed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'shop_ip_pool_free', { server: 'metrics-d1.example.net', kind: 'dedicated' })).toBe(2);
    expect(sample(text, 'shop_ip_pool_free', { server: 'metrics-d1.example.net', kind: 'shared' })).toBe(1);
    expect(sample(text, 'shop_ssh_pool_connections')).toBe(0);
    expect(sample(text, 'shop_engine_process_cpu_user_seconds_total')).toBeGreaterThan(0);
    for (const name of ['shop_order_to_live_seconds', 'shop_saga_step_duration_seconds', 'shop_webserver_rebuilds_total', 'shop_installs', 'shop_task_stale']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    // Each recurring task has its staleness.
    expect(sample(text, 'shop_task_stale', { task: 'NginxReconcile' })).toBe(0);
  });

  it('exports every metric the Grafana dashboard in docs/ graphs', async () => {
    const text = await (await scrape()).text();
    const dashboard = readFileSync(join(process.cwd(), 'docs/grafana-dashboard.json'), 'utf8');
    const used = new Set([...dashboard.matchAll(/\b(shop_[a-z_]+?)(?:_bucket|_count|_sum)?\b[{[)]/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThanOrEqual(14);
    for (const name of used) expect([name, `# TYPE ${name} `, text.includes(`# TYPE ${name} `)]).toEqual([name, `# TYPE ${name} `, true]);
  });

  it('takes the token when one is given, and refuses a wrong one even on the loopback', async () => {
    expect((await scrape({ authorization: `Bearer ${METRICS_TOKEN}` })).status).toBe(200);
    const wrong = await scrape({ authorization: 'Bearer not-the-token-at-all' });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).not.toContain(METRICS_TOKEN);
  });

  it('is not an API endpoint of the OpenAPI document', async () => {
    const doc = (await (await fetch(`${engine.url}/docs-json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).not.toContain('/metrics');
  });
});
