import { failoverGroups } from './failover-plan.js';
import { IpManager, type NodeNetwork } from './ip-manager/ip-manager.js';
import type { NodeState } from './ip-manager/node-state.js';
import { keepalivedCheckProblems, KeepalivedRenderError, renderKeepalived, type KeepalivedNodeInput } from './keepalived-render.js';

const node = (overrides: Partial<KeepalivedNodeInput> = {}): KeepalivedNodeInput => ({
  serverId: 1,
  hostname: 'd1.example.net',
  interface: 'eth0',
  privateIp: '10.0.0.1',
  peers: ['10.0.0.2'],
  groups: [
    { name: 'carp1', vrid: 1, ownerServerId: 1, ips: ['203.0.113.2', '203.0.113.1'] },
    { name: 'carp2', vrid: 2, ownerServerId: 2, ips: ['203.0.113.5'] },
  ],
  notifyScript: '/etc/keepalived/ip-manager',
  peerPriority: 100,
  ...overrides,
});

describe('renderKeepalived', () => {
  it('writes a VRRP instance per group, the owner at 150 and the peer lower, unicast, notify scripts for every event', () => {
    const conf = renderKeepalived(node());
    expect(conf).toMatch(/vrrp_instance carp1 \{\n  state BACKUP\n  interface eth0\n  virtual_router_id 1\n  priority 150\n/);
    expect(conf).toMatch(/vrrp_instance carp2 \{[^}]*virtual_router_id 2\n  priority 100\n/);
    expect(conf).toContain('  unicast_src_ip 10.0.0.1\n  unicast_peer {\n    10.0.0.2\n  }');
    for (const event of ['MASTER', 'BACKUP', 'FAULT', 'STOP']) expect(conf).toContain(`notify_${event.toLowerCase()} "/etc/keepalived/ip-manager carp1 ${event}"`);
    expect(conf).toContain('floating IPs moved by ip-manager: 203.0.113.1 203.0.113.2');
    expect(conf).not.toContain('virtual_ipaddress');
    expect(renderKeepalived(node())).toBe(conf);
  });

  it('refuses what keepalived syntax would not take unquoted', () => {
    expect(() => renderKeepalived(node({ interface: 'eth0 }' }))).toThrow(KeepalivedRenderError);
    expect(() => renderKeepalived(node({ notifyScript: '/x; rm -rf /' }))).toThrow(KeepalivedRenderError);
    expect(() => renderKeepalived(node({ groups: [{ name: 'carp1', vrid: 1, ownerServerId: 1, ips: ['1.2.3'] }] }))).toThrow(KeepalivedRenderError);
    expect(() => renderKeepalived(node({ peerPriority: 150 }))).toThrow(KeepalivedRenderError);
  });

  it('reads keepalived -t: exit 5 for "No VIP" alone passes, anything else is a problem', () => {
    expect(keepalivedCheckProblems(0, '')).toEqual([]);
    expect(keepalivedCheckProblems(5, '(carp1) No VIP specified; at least one is sensible\n')).toEqual([]);
    expect(keepalivedCheckProblems(5, "(carp1) No VIP specified; at least one is sensible\n(file: Line 3) Unknown keyword 'x'\n")).toEqual(["(file: Line 3) Unknown keyword 'x'"]);
  });
});

describe('failoverGroups', () => {
  it('makes a group per name, owned by the server of its IPs, VRRP ids by the oldest IP; refuses a group of two owners', () => {
    const { groups, problems } = failoverGroups([
      { id: 7, ip: '203.0.113.5', serverId: 2, failoverGroup: 'carp2' },
      { id: 3, ip: '203.0.113.1', serverId: 1, failoverGroup: 'carp1' },
      { id: 9, ip: '203.0.113.9', serverId: 1, failoverGroup: 'mixed' },
      { id: 10, ip: '203.0.113.10', serverId: 2, failoverGroup: 'mixed' },
    ]);
    expect(groups).toEqual([
      { name: 'carp1', vrid: 1, ownerServerId: 1, ips: ['203.0.113.1'] },
      { name: 'carp2', vrid: 2, ownerServerId: 2, ips: ['203.0.113.5'] },
    ]);
    expect(problems).toEqual([expect.stringContaining('mixed')]);
  });
});

/** A network in memory: which IPs this node has, which answer from elsewhere. */
class FakeNetwork implements NodeNetwork {
  held = new Set<string>();
  elsewhere = new Set<string>();
  failAdds = 0;
  announced: string[] = [];
  async holds(ip: string) { return this.held.has(ip); }
  async answersElsewhere(ip: string) { return this.elsewhere.has(ip); }
  async add(ip: string) {
    if (this.failAdds-- > 0) throw new Error('RTNETLINK busy');
    this.held.add(ip);
  }
  async announce(ip: string) { this.announced.push(ip); }
  async remove(ip: string) { this.held.delete(ip); }
}

describe('IpManager', () => {
  const state: NodeState = {
    version: 1,
    serverId: 2,
    hostname: 'd2',
    interface: 'eth0',
    groups: [
      { name: 'carp1', ownerServerId: 1, ips: ['203.0.113.1', '203.0.113.2'] },
      { name: 'carp2', ownerServerId: 2, ips: ['203.0.113.5'] },
    ],
  };
  const fast = { probes: 2, probeGapMs: 1, retryDelayMs: 1 };

  it("takes a peer's IPs on MASTER, announces them, and leaves one that still answers elsewhere", async () => {
    const net = new FakeNetwork();
    net.elsewhere.add('203.0.113.2');
    const records = await new IpManager(net, fast).handle(state, 'carp1', 'MASTER');
    expect(records.map((r) => [r.ip, r.action, r.holderServerId])).toEqual([
      ['203.0.113.1', 'taken', 2],
      ['203.0.113.2', 'skipped-answers-elsewhere', null],
    ]);
    expect([...net.held]).toEqual(['203.0.113.1']);
    expect(net.announced).toEqual(['203.0.113.1']);
  });

  it('takes its own IPs without the check (the peer releases them at the same moment), and releases on BACKUP, FAULT and STOP', async () => {
    const net = new FakeNetwork();
    net.elsewhere.add('203.0.113.5');
    expect((await new IpManager(net, fast).handle(state, 'carp2', 'MASTER')).map((r) => r.action)).toEqual(['taken']);
    for (const event of ['BACKUP', 'FAULT', 'STOP'] as const) {
      net.held.add('203.0.113.5');
      expect((await new IpManager(net, fast).handle(state, 'carp2', event)).map((r) => r.action)).toEqual(['released']);
    }
    expect((await new IpManager(net, fast).handle(state, 'carp2', 'BACKUP')).map((r) => r.action)).toEqual(['not-held']);
  });

  it('retries a failing step and reports it failed after its attempts', async () => {
    const net = new FakeNetwork();
    net.failAdds = 1;
    expect((await new IpManager(net, fast).handle(state, 'carp2', 'MASTER'))[0]).toMatchObject({ action: 'taken', attempts: 2 });
    net.held.clear();
    net.failAdds = 5;
    expect((await new IpManager(net, { ...fast, attempts: 3 }).handle(state, 'carp2', 'MASTER'))[0]).toMatchObject({ action: 'failed', attempts: 3, error: 'RTNETLINK busy' });
  });
});
