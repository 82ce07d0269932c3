import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEvent, Server, ServerIp } from '@app/catalog';
import { defaultIpManagerCommand, FLOATING_IP_TAKEOVER, KeepalivedApplyService, type NodeState } from '@app/failover';
import { HostsModule } from '@app/hosts';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { KaNetwork } from '../support/ka-netns.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';

/**
 * ip-manager when the catalog is unreachable: it still moves the IP (from the
 * state file), keeps what it did in its journal, and the engine records the
 * journal at its next apply. Needs the build (runs the compiled entry).
 */
describe('ip-manager without the catalog', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ka-offline-'));
  let net: KaNetwork;
  let catalog: TestCatalog;
  let app: INestApplicationContext;

  beforeAll(async () => {
    net = KaNetwork.create('ka1');
    net.addHost('ka-off', '10.200.0.81');
    catalog = await createTestCatalog('sqlite', 'ka-offline');
    app = await startQueueContext(catalog.url, [KeepalivedApplyService], null, [HostsModule.forRoot({ http: false })] as unknown as Type[]);
  });
  afterAll(async () => {
    await net?.destroy();
    await app?.close();
    await catalog?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes a peer's IP from its state file, journals it, and the engine's next apply records the holder", async () => {
    const ds = app.get(DataSource);
    const owner = await ds.getRepository(Server).save(testServer(join(dir, 'd1'), 'd1.offline.net', ['dispatcher'], null, { privateIp: '10.200.0.80' }));
    const node = await ds.getRepository(Server).save(testServer(join(dir, 'd2'), 'd2.offline.net', ['dispatcher'], null, { privateIp: '10.200.0.81' }));
    await ds.getRepository(ServerIp).save({ serverId: owner.id, ip: '10.200.0.121', kind: 'floating', failoverGroup: 'carp1', activeServerId: owner.id });
    const confDir = join(dir, 'd2', 'keepalived');
    mkdirSync(confDir, { recursive: true });
    const state: NodeState = { version: 1, serverId: node.id, hostname: node.hostname, interface: 'eth0', groups: [{ name: 'carp1', ownerServerId: owner.id, ips: ['10.200.0.121'] }] };
    writeFileSync(join(confDir, 'ip-manager.json'), JSON.stringify(state));
    // A catalog nobody answers for (nothing listens on port 1 in the namespace).
    const [nodeBin, entry] = defaultIpManagerCommand();
    const started = Date.now();
    const out = execFileSync('ip', ['netns', 'exec', 'ka-off', 'env', '-i', 'CATALOG_URL=mysql://u:p@127.0.0.1:1/catalog', nodeBin!, entry!, '--state', join(confDir, 'ip-manager.json'), 'carp1', 'MASTER'], { encoding: 'utf8', timeout: 60_000 });
    expect(out).toContain('10.200.0.121 taken');
    expect(out).toContain('could not record to the catalog');
    expect(net.addresses('ka-off')).toContain('10.200.0.121');
    process.stdout.write(`ka-offline: ip-manager run without a catalog took ${((Date.now() - started) / 1000).toFixed(2)} s\n`);
    expect(JSON.parse(readFileSync(join(confDir, 'ip-manager.journal'), 'utf8').trim())).toMatchObject({ ip: '10.200.0.121', action: 'taken', serverId: node.id });
    expect((await ds.getRepository(ServerIp).findOneByOrFail({ ip: '10.200.0.121' })).activeServerId).toBe(owner.id);

    // The engine's next apply collects the journal.
    const apply = app.get(KeepalivedApplyService);
    await apply.register(node.id, { interface: 'eth0', confDir, pidFile: null });
    await apply.register(owner.id, { interface: 'eth0', confDir: join(dir, 'd1', 'keepalived'), pidFile: null });
    const applied = await apply.apply(node.id);
    expect(applied.collected).toBe(1);
    expect(existsSync(join(confDir, 'ip-manager.journal'))).toBe(false);
    expect((await ds.getRepository(ServerIp).findOneByOrFail({ ip: '10.200.0.121' })).activeServerId).toBe(node.id);
    expect(await ds.getRepository(AuditEvent).countBy({ action: FLOATING_IP_TAKEOVER })).toBe(1);
  });
});
