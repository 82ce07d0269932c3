import { insideFtpTree, mountPoints, parseMountsRecord, planMounts, renderMountsRecord, type MountFacts } from './bind-mounts.plan.js';

const ROOT = '/srv/home';
const theme = { source: '/srv/home/shop1/heavymetal/theme', target: '/srv/home/shop1/ftp/heavymetal_theme' };
const logo = { source: '/srv/home/shop1/html/logo.png', target: '/srv/home/shop1/ftp/html_logo.png' };
const dir: MountFacts = { sourceKind: 'd', targetKind: 'd', sameFile: false };
const file: MountFacts = { sourceKind: 'f', targetKind: 'f', sameFile: false };
const mounted = (...targets: string[]) => new Map(targets.map((t) => [t, 1]));

describe('bind mounts plan', () => {
  it('recognises an install\'s FTP tree only', () => {
    expect(insideFtpTree(ROOT, theme.target)).toBe(true);
    expect(insideFtpTree(`${ROOT}/`, theme.target)).toBe(true);
    for (const t of ['/srv/home/shop1/ftp', '/srv/home/shop1/html', '/srv/home/shop1/ftp/a/b', '/srv/home/shop1/ftp/../x', '/srv/home/.ftp/ftp/x', '/etc/passwd', '/srv/homeX/s/ftp/x', '/srv/home/shop1/ftp/.hidden']) {
      expect([t, insideFtpTree(ROOT, t)]).toEqual([t, false]);
    }
  });

  it('mounts missing rows (recording them first), keeps those in place, refuses what is outside or mismatched', () => {
    const plan = planMounts({
      homeRoot: ROOT,
      rows: [theme, logo, { source: '/etc', target: '/srv/home/shop1/etc' }, { source: '/srv/home/shop1/html/a.png', target: '/srv/home/shop1/ftp/html_a.png' }],
      record: [],
      mounted: mounted(),
      facts: new Map([[theme.target, dir], [logo.target, file], ['/srv/home/shop1/ftp/html_a.png', { sourceKind: 'f', targetKind: 'd', sameFile: false }]]),
    });
    expect(plan.mount).toEqual([theme, logo]);
    expect(plan.intent).toEqual([theme, logo]);
    expect(plan.skipped.map((s) => s.target)).toEqual(['/srv/home/shop1/etc', '/srv/home/shop1/ftp/html_a.png']);
    expect(plan.skipped[1]!.why).toMatch(/target is a directory, its source a file/);
    const again = planMounts({ homeRoot: ROOT, rows: [theme, logo], record: [theme, logo], mounted: mounted(theme.target, logo.target), facts: new Map([[theme.target, { ...dir, sameFile: true }], [logo.target, { ...file, sameFile: true }]]) });
    expect(again).toMatchObject({ mount: [], unmount: [], kept: 2, intent: [theme, logo] });
  });

  it('never touches a foreign mount; unmounts its own without a row; forgets its own that a reboot took', () => {
    const foreign = planMounts({ homeRoot: ROOT, rows: [theme], record: [], mounted: mounted(theme.target), facts: new Map([[theme.target, { ...dir, sameFile: true }]]) });
    expect(foreign).toMatchObject({ mount: [], unmount: [], skipped: [{ target: theme.target, why: expect.stringMatching(/did not mount/) }] });
    const gone = planMounts({ homeRoot: ROOT, rows: [], record: [theme, logo], mounted: new Map([[theme.target, 2]]), facts: new Map() });
    expect(gone.unmount).toEqual([{ target: theme.target, times: 2 }]);
    expect(gone.intent).toEqual([theme]);
    const rebooted = planMounts({ homeRoot: ROOT, rows: [theme], record: [theme], mounted: mounted(), facts: new Map([[theme.target, dir]]) });
    expect(rebooted).toMatchObject({ mount: [theme], unmount: [], intent: [theme] });
    const moved = { ...theme, source: '/srv/home/shop1/heavymetal/theme2' };
    const changed = planMounts({ homeRoot: ROOT, rows: [moved], record: [theme], mounted: mounted(theme.target), facts: new Map([[theme.target, dir]]) });
    expect(changed).toMatchObject({ unmount: [{ target: theme.target, times: 1 }], mount: [moved], intent: [moved] });
  });

  it('restricted to some targets (a removal) leaves every other mount and record line alone', () => {
    const plan = planMounts({ homeRoot: ROOT, rows: [], record: [theme, logo], mounted: mounted(theme.target, logo.target), facts: new Map(), only: new Set([logo.target]) });
    expect(plan.unmount).toEqual([{ target: logo.target, times: 1 }]);
    expect(plan.intent).toEqual([theme, logo]);
  });

  it('reads the record and the mount table (escaped spaces decoded)', () => {
    expect(parseMountsRecord(renderMountsRecord([logo, theme, logo]))).toEqual([theme, logo].sort((a, b) => (a.target < b.target ? -1 : 1)));
    const table = mountPoints('22 1 8:1 / / rw - ext4 /dev/sda1 rw\n40 22 8:1 /srv/x /srv/a\\040b rw - ext4 /dev/sda1 rw\n41 22 8:1 /srv/x /srv/a\\040b rw - ext4 /dev/sda1 rw\n');
    expect(table.get('/srv/a b')).toBe(2);
    expect(table.get('/')).toBe(1);
  });
});
