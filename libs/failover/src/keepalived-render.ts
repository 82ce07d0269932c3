/**
 * keepalived's configuration of one dispatcher, as a pure function of the
 * catalog: one VRRP instance per failover group (the seed's carp1, carp2),
 * the group's owner with the higher priority and preemption on, unicast
 * adverts to the peers' private IPs, and notify scripts calling `ip-manager`.
 *
 * The floating IPs are NOT keepalived virtual addresses: keepalived would add
 * them blindly, while the seed's rule is to take a peer's IP only when it does
 * not answer from elsewhere. `ip-manager` moves them; the config lists them
 * in a comment so an operator reading it sees the whole picture. Same input,
 * byte-identical output.
 */

export interface FailoverGroupInput {
  name: string;
  /** VRRP router id, 1-255, the same on every node. */
  vrid: number;
  ownerServerId: number;
  ips: readonly string[];
}

export interface KeepalivedNodeInput {
  serverId: number;
  hostname: string;
  /** The interface the floating IPs and the adverts use. */
  interface: string;
  privateIp: string;
  /** The other nodes' private IPs (unicast peers). */
  peers: readonly string[];
  groups: readonly FailoverGroupInput[];
  /** Absolute path of the notify script (`<script> <group> MASTER|BACKUP|FAULT|STOP`). */
  notifyScript: string;
  /** Priority of this node in the groups it does not own; the owner gets OWNER_PRIORITY. */
  peerPriority: number;
  advertIntervalS?: number;
}

export const OWNER_PRIORITY = 150;

export class KeepalivedRenderError extends Error {}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
const IFACE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const SCRIPT = /^\/[A-Za-z0-9_./-]+$/;

function checked(value: string, pattern: RegExp, what: string): string {
  if (!pattern.test(value)) throw new KeepalivedRenderError(`refused ${what} ${JSON.stringify(value)} for keepalived's configuration`);
  return value;
}

export function renderKeepalived(node: KeepalivedNodeInput): string {
  const advert = node.advertIntervalS ?? 1;
  const iface = checked(node.interface, IFACE, 'interface');
  const src = checked(node.privateIp, IPV4, 'private IP');
  const peers = [...new Set(node.peers)].filter((p) => p !== src).sort().map((p) => checked(p, IPV4, 'peer IP'));
  const script = checked(node.notifyScript, SCRIPT, 'notify script');
  if (!Number.isInteger(node.peerPriority) || node.peerPriority < 1 || node.peerPriority >= OWNER_PRIORITY) throw new KeepalivedRenderError(`refused peer priority ${node.peerPriority}`);
  const vrids = new Set<number>();
  const lines = [
    '# Written by the provisioning engine from the catalog (server_ips): do not edit.',
    'global_defs {',
    `  router_id ${checked(node.hostname.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 32), NAME, 'router id')}`,
    '  script_user root',
    '  enable_script_security',
    '}',
  ];
  for (const group of [...node.groups].sort((a, b) => a.vrid - b.vrid)) {
    const name = checked(group.name, NAME, 'failover group');
    if (!Number.isInteger(group.vrid) || group.vrid < 1 || group.vrid > 255 || vrids.has(group.vrid)) throw new KeepalivedRenderError(`refused VRRP id ${group.vrid} of group ${name}`);
    vrids.add(group.vrid);
    const owner = group.ownerServerId === node.serverId;
    lines.push(
      '',
      `# ${owner ? 'owned here' : `owned by server ${group.ownerServerId}`}; floating IPs moved by ip-manager: ${[...group.ips].sort().map((ip) => checked(ip, IPV4, 'floating IP')).join(' ') || '(none yet)'}`,
      `vrrp_instance ${name} {`,
      // Both start as BACKUP: the higher priority wins the election, and preemption gives a returning owner its group back.
      '  state BACKUP',
      `  interface ${iface}`,
      `  virtual_router_id ${group.vrid}`,
      `  priority ${owner ? OWNER_PRIORITY : node.peerPriority}`,
      `  advert_int ${advert}`,
      `  unicast_src_ip ${src}`,
      '  unicast_peer {',
      ...peers.map((p) => `    ${p}`),
      '  }',
      ...(['MASTER', 'BACKUP', 'FAULT', 'STOP'] as const).map((event) => `  notify_${event.toLowerCase()} "${script} ${name} ${event}"`),
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

/** keepalived -t exits 5 only to say an instance has no virtual address, which is by design here (see above); anything else it says is an error. */
export function keepalivedCheckProblems(exitCode: number, stderr: string): string[] {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/No VIP specified; at least one is sensible$/.test(l));
  if (exitCode === 0 || (exitCode === 5 && lines.length === 0)) return [];
  return lines.length > 0 ? lines : [`keepalived -t exited ${exitCode}`];
}
