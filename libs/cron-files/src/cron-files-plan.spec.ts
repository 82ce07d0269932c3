import { cronMarker, renderCronFile } from '@app/installs';
import { planCronDirectory, type WantedCronFile } from './cron-files-plan.js';
import { parseListing, sha256Of, type CronEntry, type CronListing } from './cron-listing.js';

const install = (id: number, fsName: string) => ({ id, fsName });
const wantedOf = (id: number, fsName: string, serverId = 1): WantedCronFile => ({
  serverId, installId: id, name: `shop-${fsName}`, content: renderCronFile(install(id, fsName), [{ schedule: '* * * * *', command: ['php', 'cron.php'] }], `/srv/home/${fsName}`, 'www-data'),
});
const fileOf = (w: WantedCronFile, over: Partial<Extract<CronEntry, { kind: 'file' }>> = {}): CronEntry => ({
  name: w.name, kind: 'file', mode: 0o644, uid: 0, sha256: sha256Of(w.content), firstLine: w.content.split('\n')[0]!, ...over,
});
const listingOf = (...entries: CronEntry[]): CronListing => ({ present: true, identity: 'm:1:2', uid: 0, entries: new Map(entries.map((e) => [e.name, e])) });

describe('planCronDirectory', () => {
  const one = wantedOf(1, 'one');
  const two = wantedOf(2, 'two');

  it('writes nothing when every wanted file is there as rendered, 0644, the engine\'s', () => {
    expect(planCronDirectory({ listing: listingOf(fileOf(one), fileOf(two)), wanted: [one, two], held: new Set() })).toEqual({ restores: [], strays: [], unchanged: 2, foreign: [], conflicts: [] });
  });

  it('restores a missing, edited, re-moded, re-owned or replaced file, saying why', () => {
    const three = wantedOf(3, 'three');
    const four = wantedOf(4, 'four');
    const plan = planCronDirectory({
      listing: listingOf(fileOf(one, { sha256: 'x'.repeat(64) }), fileOf(two, { mode: 0o666, uid: 1000 }), { name: three.name, kind: 'link' }),
      wanted: [one, two, three, four],
      held: new Set(),
    });
    expect(plan.restores.map((r) => [r.name, r.drift])).toEqual([
      ['shop-four', ['missing']],
      ['shop-one', ['differs']],
      ['shop-three', ['not-a-file']],
      ['shop-two', ['mode', 'owner']],
    ]);
    expect(plan.restores[0]!.content).toBe(four.content);
  });

  it('a stray is only a regular file whose marker names the install its own name is for; the rest is left alone', () => {
    const gone = wantedOf(9, 'gone');
    const plan = planCronDirectory({
      listing: listingOf(
        fileOf(gone),
        { name: 'shop-edited', kind: 'file', mode: 0o644, uid: 0, sha256: null, firstLine: '# my own crons' },
        { name: 'shop-renamed', kind: 'file', mode: 0o644, uid: 0, sha256: null, firstLine: cronMarker(install(5, 'other')) },
        { name: 'shop-alink', kind: 'link' },
        { name: 'shop-adir', kind: 'other' },
      ),
      wanted: [],
      held: new Set(),
    });
    expect(plan.strays).toEqual([{ installId: 9, fsName: 'gone', name: 'shop-gone' }]);
    expect(plan.foreign.sort()).toEqual(['shop-adir', 'shop-alink', 'shop-edited', 'shop-renamed']);
  });

  it('leaves held names alone, whether wanted elsewhere, missing or stray-looking', () => {
    const building = wantedOf(7, 'building');
    const plan = planCronDirectory({ listing: listingOf(fileOf(building, { sha256: 'y'.repeat(64) })), wanted: [one], held: new Set(['shop-building', 'shop-one']) });
    expect(plan).toEqual({ restores: [], strays: [], unchanged: 0, foreign: [], conflicts: [] });
  });

  it('two servers of one directory: the same file wanted by both is one file; different contents are a conflict, left as they are', () => {
    const same = planCronDirectory({ listing: listingOf(), wanted: [one, { ...one, serverId: 2 }], held: new Set() });
    expect(same.restores).toHaveLength(1);
    const other = { ...one, serverId: 2, content: one.content.replace('www-data', 'shop1') };
    const differ = planCronDirectory({ listing: listingOf(fileOf(one)), wanted: [one, other], held: new Set() });
    expect(differ).toMatchObject({ restores: [], strays: [], conflicts: ['shop-one'] });
  });
});

describe('parseListing', () => {
  it('reads the header and each kind of entry (a first line may hold tabs)', () => {
    const sha = 'a'.repeat(64);
    const listing = parseListing(`dir\tpresent\tabc:2049:77\t0\nfile\tshop-one\t644\t0\t${sha}\t# a\tb\nfile\tshop-big\t600\t33\t-\t\nlink\tshop-l\nother\tshop-d\n`);
    expect(listing).toMatchObject({ present: true, identity: 'abc:2049:77', uid: 0 });
    expect([...listing.entries.values()]).toEqual([
      { name: 'shop-one', kind: 'file', mode: 0o644, uid: 0, sha256: sha, firstLine: '# a\tb' },
      { name: 'shop-big', kind: 'file', mode: 0o600, uid: 33, sha256: null, firstLine: '' },
      { name: 'shop-l', kind: 'link' },
      { name: 'shop-d', kind: 'other' },
    ]);
    expect(parseListing('dir\tabsent\t-\t1000\n')).toMatchObject({ present: false, identity: null, uid: 1000 });
    expect(() => parseListing('oops\n')).toThrow(/unexpected cron listing header/);
  });
});
