import { pairKey, planSyncs, type PairState, type SyncCandidate } from './theme-sync-plan.js';
import { digestInput, parseDigests, type HomeDigest } from './tree-digest.js';

const digest = (installId: number, d: string, marker = `m${installId}`): HomeDigest => ({ installId, markerMd5: marker, digest: d, missing: [], unsafe: [] });
const marker = (id: number) => `m${id}`;

describe('planSyncs (which installs go to which servers)', () => {
  const candidates: SyncCandidate[] = [
    { installId: 1, masterId: 10, targetIds: [11, 12] },
    { installId: 2, masterId: 10, targetIds: [11] },
  ];

  it('syncs only pairs whose master digest differs from the one last synced there', () => {
    const states = new Map<string, PairState>([
      [pairKey(1, 11), { digest: 'a', syncedAt: new Date(1000), failedAt: null }],
      [pairKey(1, 12), { digest: 'old', syncedAt: new Date(1000), failedAt: null }],
      [pairKey(2, 11), { digest: 'b', syncedAt: new Date(1000), failedAt: null }],
    ]);
    const plan = planSyncs(candidates, new Map([[1, digest(1, 'a')], [2, digest(2, 'b')]]), marker, states, () => false);
    expect(plan.pending).toEqual([{ installId: 1, masterId: 10, targetId: 12, digest: 'a' }]);
    expect(plan.unchanged).toBe(2);
  });

  it('leaves a down server\'s pairs for later, and never looks at a master home without the install\'s marker', () => {
    const plan = planSyncs(candidates, new Map([[1, digest(1, 'a')], [2, digest(2, 'b', 'someone else')]]), marker, new Map(), (id) => id === 12);
    expect(plan.pending.map((p) => [p.installId, p.targetId])).toEqual([[1, 11]]);
    expect(plan.down).toEqual([{ installId: 1, targetId: 12 }]);
    expect(plan.notLooked).toEqual([{ installId: 2, why: expect.stringMatching(/marker/) }]);
  });

  it('puts pairs never synced or synced longest ago first', () => {
    const states = new Map<string, PairState>([
      [pairKey(1, 11), { digest: 'x', syncedAt: new Date(5000), failedAt: null }],
      [pairKey(2, 11), { digest: 'x', syncedAt: new Date(1000), failedAt: new Date(2000) }],
    ]);
    const plan = planSyncs(candidates, new Map([[1, digest(1, 'a')], [2, digest(2, 'b')]]), marker, states, () => false);
    expect(plan.pending.map((p) => [p.installId, p.targetId])).toEqual([[1, 12], [2, 11], [1, 11]]);
  });

  it('syncs nothing for an install whose master did not answer', () => {
    const plan = planSyncs(candidates, new Map([[1, 'its master d1 did not answer']]), marker, new Map(), () => false);
    expect(plan.pending).toEqual([]);
    expect(plan.notLooked.map((n) => n.installId)).toEqual([1, 2]);
  });
});

describe('the digest script\'s input and output', () => {
  it('writes one tab-separated line per install and refuses control characters', () => {
    expect(digestInput([{ installId: 7, home: '/home/shop', paths: ['heavymetal/theme', 'html/mas_assets/theme'] }])).toBe('7\t/home/shop\theavymetal/theme\thtml/mas_assets/theme\n');
    expect(() => digestInput([{ installId: 7, home: '/home/a\tb', paths: [] }])).toThrow(/control characters/);
  });

  it('reads markers, digests, missing and unsafe paths', () => {
    const parsed = parseDigests('7\tabc\tdef\tsnip\theavymetal/theme\n8\t-\t-\t\t\n');
    expect(parsed.get(7)).toEqual({ installId: 7, markerMd5: 'abc', digest: 'def', missing: ['snip'], unsafe: ['heavymetal/theme'] });
    expect(parsed.get(8)).toEqual({ installId: 8, markerMd5: null, digest: null, missing: [], unsafe: [] });
    expect(() => parseDigests('x\n')).toThrow(/unexpected/);
  });
});

describe('planSyncs retries', () => {
  it('asks a pair that failed or was refused again only after the retry delay', () => {
    const candidates: SyncCandidate[] = [{ installId: 1, masterId: 10, targetIds: [11] }];
    const states = new Map<string, PairState>([[pairKey(1, 11), { digest: null, syncedAt: null, failedAt: new Date(10_000) }]]);
    const digests = new Map([[1, digest(1, 'a')]]);
    expect(planSyncs(candidates, digests, marker, states, () => false, { now: 20_000, afterMs: 60_000 })).toMatchObject({ pending: [], retrying: 1 });
    expect(planSyncs(candidates, digests, marker, states, () => false, { now: 80_000, afterMs: 60_000 }).pending).toHaveLength(1);
  });
});
