import { isInside } from './install-backups.service.js';
import { checkInstallId } from './removal.errors.js';
import { backupDirOn, backupsRootOn } from './removal-context.js';
import { siteNamesOf } from './remove-install.steps.js';

describe('removal: pure helpers', () => {
  it('keeps backups in a dot-directory of the home root, named from ids only (no fs name can be it)', () => {
    expect(backupsRootOn({ homeRoot: '/srv/home/' })).toBe('/srv/home/.install-backups');
    expect(backupDirOn({ homeRoot: '/srv/home' }, 42, 7)).toBe('/srv/home/.install-backups/install-42-7');
  });

  it('says a path is inside a root only strictly, as text, never through ..', () => {
    expect(isInside('/srv/certs', '/srv/certs/a.pem')).toBe(true);
    expect(isInside('/srv/certs/', '/srv/certs/sub/a.key')).toBe(true);
    expect(isInside('/srv/certs', '/srv/certs')).toBe(false);
    expect(isInside('/srv/certs', '/srv/certs2/a.pem')).toBe(false);
    expect(isInside('/srv/certs', '/srv/certs/../home/x')).toBe(false);
    expect(isInside('/srv/certs', 'srv/certs/a.pem')).toBe(false);
  });

  it('accepts install ids that are positive 32-bit integers only', () => {
    expect(checkInstallId(1)).toBe(1);
    expect(checkInstallId(2_147_483_647)).toBe(2_147_483_647);
    for (const bad of [0, -1, 1.5, Number.NaN, 2_147_483_648, 99_999_999_999]) expect(() => checkInstallId(bad)).toThrow(/positive integer/);
  });

  it('lists every hostname and secure hostname of the sites once', () => {
    expect(siteNamesOf([{ hostname: 'a.test', secureHostname: 'secure.a.test' }, { hostname: 'b.test', secureHostname: 'b.test' }, { hostname: 'a.test', secureHostname: null }])).toEqual(['a.test', 'secure.a.test', 'b.test']);
  });
});
