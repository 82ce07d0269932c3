import { formatLeaseOwner, isDeadHolderHere, parseLeaseOwner, type ProcessPlace } from './lease-owner.js';

describe('lease owners', () => {
  const here: ProcessPlace = { host: 'engine-1', pid: 500, space: 'a1b2c3d4e5f6' };
  const alive = new Set([500, 600]);
  const probe = (liveOwners: string[] = []) => ({
    isAlive: (pid: number) => alive.has(pid),
    isLiveOwnerHere: (owner: string) => liveOwners.includes(owner),
  });
  const owner = (over: Partial<ProcessPlace>, tag = 'abcdef') => formatLeaseOwner({ ...here, ...over }, tag);

  it('reads back what it writes, and nothing else', () => {
    expect(parseLeaseOwner(owner({ pid: 42 }))).toEqual({ host: 'engine-1', pid: 42, space: 'a1b2c3d4e5f6', tag: 'abcdef' });
    expect(parseLeaseOwner('w1')).toBeNull();
    expect(parseLeaseOwner('engine-1:42:abcdef')).toBeNull();
    expect(parseLeaseOwner('engine-1:x:a1b2c3d4e5f6:abcdef')).toBeNull();
    expect(parseLeaseOwner(formatLeaseOwner({ ...here, space: null }, 'abcdef'))).toBeNull();
  });

  it('calls dead a holder of this host and pid space whose pid no longer runs', () => {
    expect(isDeadHolderHere(owner({ pid: 700 }), here, probe())).toBe(true);
  });

  it('never calls dead a holder whose pid runs, even if the pid may have been reused', () => {
    expect(isDeadHolderHere(owner({ pid: 600 }), here, probe())).toBe(false);
  });

  it('never judges a holder of another host or pid space, whatever its pid', () => {
    expect(isDeadHolderHere(owner({ host: 'engine-2', pid: 700 }), here, probe())).toBe(false);
    expect(isDeadHolderHere(owner({ space: 'ffffffffffff', pid: 700 }), here, probe())).toBe(false);
    expect(isDeadHolderHere('w1', here, probe())).toBe(false);
  });

  it('knows nothing where this process cannot name its pid space', () => {
    expect(isDeadHolderHere(owner({ pid: 700 }), { ...here, space: null }, probe())).toBe(false);
  });

  it('calls dead a predecessor that had this pid, but not a worker of this process', () => {
    const sibling = owner({}, 'aaaaaa');
    expect(isDeadHolderHere(owner({}, 'bbbbbb'), here, probe([sibling]))).toBe(true);
    expect(isDeadHolderHere(sibling, here, probe([sibling]))).toBe(false);
  });
});
