import { execFileSync } from 'node:child_process';
import { jest } from '@jest/globals';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEvent, Server, ServerIp } from '@app/catalog';
import { FailoverStatus, FLOATING_IP_LEFT, FLOATING_IP_TAKEOVER, KeepalivedApplyService } from '@app/failover';
import { HostsModule } from '@app/hosts';
import { createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { KaNetwork, stopByPidFile, waitFor, writeDispatcherNginx } from '../support/ka-netns.js';
import { startQueueContext } from '../support/queue-context.js';
import { testServer } from '../support/server-roots.js';

/**
 * The proof of issue 19's floating IPs: two dispatchers as network
 * namespaces on a bridge, each with a real keepalived whose configuration the
 * engine generated and applied, calling the engine's real ip-manager, and a
 * real nginx listening on every floating IP it may hold; a client namespace
 * requests a paid shop on its two floating IPs (one per dispatcher's group).
 * A third namespace holds one of d1's IPs to show a live IP is not taken.
 * Needs the build (the notify script runs dist/…/ip-manager.main.js).
 */
const D1 = '10.200.0.51';
const D2 = '10.200.0.52';
const CLIENT = '10.200.0.60';
const OTHER = '10.200.0.70';
const SHOP_D1 = '10.200.0.101'; // carp1 (d1's group): the shop's floating IP on d1
const SPARE_D1 = '10.200.0.102'; // carp1 too: held by the third namespace during the takeover
const SHOP_D2 = '10.200.0.111'; // carp2 (d2's group)
const HOST = 'shop.floating-proof.com';

jest.setTimeout(120_000);

/** The ip-manager processes of this test (their state file is under `root`): waited for up to 30 s, then killed. */
async function endIpManagers(root: string): Promise<void> {
  const running = () =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
          return cmd.includes('ip-manager') && cmd.includes(root);
        } catch {
          return false;
        }
      })
      .map(Number);
  const deadline = Date.now() + 30_000;
  while (running().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  for (const pid of running()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

describe('floating IP failover with keepalived in network namespaces', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ka-proof-'));
  let net: KaNetwork;
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let ds: DataSource;
  let apply: KeepalivedApplyService;
  const ids: Record<string, number> = {};
  const confDir = (name: string) => join(dir, name, 'keepalived');
  const kaPid = (name: string) => join(dir, name, 'keepalived.pid');

  const startKeepalived = (name: string) => {
    net.start(`ka-${name}`, ['keepalived', '-n', '-l', '-D', '-G', '-P', '-f', join(confDir(name), 'keepalived.conf'), '-p', kaPid(name), '-r', join(dir, name, 'vrrp.pid')], join(dir, name, 'keepalived.log'));
  };
  /** What the client gets from one IP: the dispatcher's name, or null when the request failed. */
  const request = (ip: string): string | null => {
    const r = net.exec('ka-client', ['curl', '-s', '-m', '1', '-H', `Host: ${HOST}`, `http://${ip}/`]);
    return r.code === 0 ? r.stdout.trim() : null;
  };
  const holder = async (ip: string) => (await ds.getRepository(ServerIp).findOneByOrFail({ ip })).activeServerId;

  beforeAll(async () => {
    net = KaNetwork.create('ka0');
    for (const [name, ip] of [
      ['ka-d1', D1],
      ['ka-d2', D2],
      ['ka-client', CLIENT],
      ['ka-other', OTHER],
    ] as const) {
      net.addHost(name, ip);
    }
    catalog = await createTestCatalog('sqlite', 'ka-proof');
    app = await startQueueContext(catalog.url, [KeepalivedApplyService, FailoverStatus], null, [HostsModule.forRoot({ http: false })] as unknown as Type[]);
    ds = app.get(DataSource);
    apply = app.get(KeepalivedApplyService);
    for (const [name, privateIp] of [
      ['d1', D1],
      ['d2', D2],
    ] as const) {
      mkdirSync(join(dir, name), { recursive: true });
      ids[name] = (await ds.getRepository(Server).save(testServer(join(dir, name), `${name}.floating-proof.net`, ['dispatcher'], null, { privateIp }))).id;
      await apply.register(ids[name]!, { interface: 'eth0', confDir: confDir(name), pidFile: kaPid(name) });
    }
    const floating = (serverId: number, ip: string, group: string) => ds.getRepository(ServerIp).save({ serverId, ip, kind: 'floating', failoverGroup: group, activeServerId: serverId });
    await floating(ids.d1!, SHOP_D1, 'carp1');
    await floating(ids.d1!, SPARE_D1, 'carp1');
    await floating(ids.d2!, SHOP_D2, 'carp2');
    // Each dispatcher's nginx answers on every floating IP it may hold, held or not (ip_nonlocal_bind).
    for (const name of ['d1', 'd2']) {
      net.start(`ka-${name}`, ['nginx', '-c', writeDispatcherNginx(join(dir, name), name, [SHOP_D1, SPARE_D1, SHOP_D2], HOST), '-p', join(dir, name), '-g', 'daemon off;'], join(dir, name, 'nginx.log'));
    }
  });

  afterAll(async () => {
    for (const name of ['d1', 'd2']) await stopByPidFile(kaPid(name)).catch(() => undefined);
    // The STOP runs keepalived started on its way out record to the catalog from their own sessions: let them end first.
    await endIpManagers(dir);
    await net?.destroy();
    await app?.close();
    await catalog?.drop();
    if (!process.env.KA_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  it('applies a generated keepalived configuration: a VRRP instance per group, owner first, unicast peers, notify scripts', async () => {
    const applied = await apply.applyAll();
    expect(applied.map((a) => [a.server, a.changed, a.groups])).toEqual([
      ['d1.floating-proof.net', true, ['carp1', 'carp2']],
      ['d2.floating-proof.net', true, ['carp1', 'carp2']],
    ]);
    const conf = readFileSync(join(confDir('d1'), 'keepalived.conf'), 'utf8');
    expect(conf).toContain('vrrp_instance carp1 {');
    expect(conf).toMatch(/vrrp_instance carp1 \{[^}]*priority 150/);
    expect(conf).toMatch(/vrrp_instance carp2 \{[^}]*priority 100/);
    expect(conf).toContain(`unicast_peer {\n    ${D2}\n  }`);
    expect(conf).toContain(`notify_master "${join(confDir('d1'), 'ip-manager')} carp1 MASTER"`);
    // Unchanged catalog: nothing written again.
    expect((await apply.apply(ids.d1!)).changed).toBe(false);
  });

  it('gives each dispatcher its own group’s IPs, moves both to the survivor when one keepalived stops, leaves an IP that answers elsewhere, and gives them back', async () => {
    startKeepalived('d1');
    startKeepalived('d2');
    await waitFor(() => net.addresses('ka-d1').includes(SHOP_D1) && net.addresses('ka-d1').includes(SPARE_D1) && net.addresses('ka-d2').includes(SHOP_D2), 20_000, 'each owner to hold its IPs');
    expect(request(SHOP_D1)).toBe('d1');
    expect(request(SHOP_D2)).toBe('d2');
    await waitFor(async () => (await holder(SHOP_D1)) === ids.d1 && (await holder(SHOP_D2)) === ids.d2, 20_000, 'holders in the catalog');

    // The third namespace answers for SPARE_D1 from now on (as a half-dead d1 answering ping would).
    execFileSync('ip', ['-n', 'ka-other', 'addr', 'add', `${SPARE_D1}/32`, 'dev', 'eth0']);

    let failed = 0;
    let sent = 0;
    const stopped = Date.now();
    await stopByPidFile(kaPid('d1'));
    const takeover = await waitFor(
      () => {
        sent++;
        const ok = request(SHOP_D1) === 'd2' && request(SHOP_D2) === 'd2';
        if (!ok) failed++;
        return ok;
      },
      15_000,
      'd2 to answer on both IPs',
    );
    const takeoverS = (Date.now() - stopped) / 1000;
    expect(net.addresses('ka-d2')).toEqual(expect.arrayContaining([SHOP_D1, SHOP_D2]));
    expect(net.addresses('ka-d2')).not.toContain(SPARE_D1);
    expect(net.addresses('ka-d1')).not.toContain(SHOP_D1);
    // Every request after the takeover succeeds.
    for (let i = 0; i < 10; i++) expect([request(SHOP_D1), request(SHOP_D2)]).toEqual(['d2', 'd2']);
    await waitFor(async () => (await holder(SHOP_D1)) === ids.d2, 20_000, 'd2 recorded as the holder');
    await waitFor(async () => (await ds.getRepository(AuditEvent).countBy({ action: FLOATING_IP_LEFT })) >= 1, 20_000, 'the skipped IP audited');
    expect(await ds.getRepository(AuditEvent).countBy({ action: FLOATING_IP_TAKEOVER })).toBe(1);
    // The stopped node's release of its spare IP is recorded too (from a detached process: keepalived's shutdown does not wait
    // for its notify script), and nobody holds that IP now: the third namespace answering for it is no node of ours.
    await waitFor(async () => (await holder(SPARE_D1)) === null, 20_000, 'd1 recorded as having released its spare IP');
    // What /health reports: who holds which IP.
    const holders = await app.get(FailoverStatus).holders();
    expect(holders).toEqual([
      { ip: SHOP_D1, group: 'carp1', owner: 'd1.floating-proof.net', holder: 'd2.floating-proof.net' },
      { ip: SPARE_D1, group: 'carp1', owner: 'd1.floating-proof.net', holder: null },
      { ip: SHOP_D2, group: 'carp2', owner: 'd2.floating-proof.net', holder: 'd2.floating-proof.net' },
    ]);
    process.stdout.write(`ka-proof: takeover ${takeoverS.toFixed(2)} s (waited ${takeover.toFixed(2)} s), ${failed}/${sent} client rounds failed during it\n`);
    expect(takeoverS).toBeLessThan(6);

    // d1 returns: its IPs come back (preemption), the spare too once the third namespace lets it go.
    execFileSync('ip', ['-n', 'ka-other', 'addr', 'del', `${SPARE_D1}/32`, 'dev', 'eth0']);
    const restarted = Date.now();
    startKeepalived('d1');
    await waitFor(() => request(SHOP_D1) === 'd1' && !net.addresses('ka-d2').includes(SHOP_D1), 15_000, 'd1 to take its IPs back');
    const givebackS = (Date.now() - restarted) / 1000;
    expect(net.addresses('ka-d1')).toEqual(expect.arrayContaining([SHOP_D1, SPARE_D1]));
    expect(request(SHOP_D2)).toBe('d2');
    await waitFor(async () => (await holder(SHOP_D1)) === ids.d1 && (await holder(SPARE_D1)) === ids.d1, 20_000, 'd1 recorded as the holder again');
    process.stdout.write(`ka-proof: giveback ${givebackS.toFixed(2)} s\n`);
    expect(givebackS).toBeLessThan(10);
  });

  it('moves the IPs when a dispatcher’s whole network goes down, and back when it returns', async () => {
    await waitFor(() => net.addresses('ka-d1').includes(SHOP_D1) && net.addresses('ka-d2').includes(SHOP_D2), 20_000, 'owners holding');
    const down = Date.now();
    execFileSync('ip', ['-n', 'ka-d1', 'link', 'set', 'eth0', 'down']);
    await waitFor(() => request(SHOP_D1) === 'd2' && request(SHOP_D2) === 'd2', 15_000, 'd2 to answer on both IPs');
    const takeoverS = (Date.now() - down) / 1000;
    execFileSync('ip', ['-n', 'ka-d1', 'link', 'set', 'eth0', 'up']);
    await waitFor(() => request(SHOP_D1) === 'd1', 20_000, 'd1 to answer again');
    process.stdout.write(`ka-proof: link down takeover ${takeoverS.toFixed(2)} s\n`);
    // No priority-0 advert here: the peer waits out 3 adverts plus its skew (about 3.6 s, TESTBED-2), then probes a silent IP.
    expect(takeoverS).toBeLessThan(10);
  });
});
