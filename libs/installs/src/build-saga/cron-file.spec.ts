import { cronFileName, cronMarker, CRON_FILE_NAME, parseCronMarker, renderCronFile } from './cron-file.js';

describe('cron files', () => {
  const install = { id: 126001, fsName: 'shopone' };

  it('renders the marker, the environment and each cron run in the home as the user, argument vectors quoted', () => {
    const text = renderCronFile(install, [{ schedule: '*/5 * * * *', command: ['php', 'heavymetal/cron.php', 'a=b c'] }], '/srv/home/shopone', 'shop126001');
    expect(text.split('\n')).toEqual([
      '# shop shopone (install 126001), written by the provisioning engine: do not edit',
      'SHELL=/bin/sh',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      "*/5 * * * * shop126001 cd /srv/home/shopone && php heavymetal/cron.php 'a=b c'",
      '',
    ]);
  });

  it('recognizes its own marker line and file name, nothing else', () => {
    expect(parseCronMarker(cronMarker(install))).toEqual({ fsName: 'shopone', installId: 126001 });
    expect(CRON_FILE_NAME.exec(cronFileName(install))?.[1]).toBe('shopone');
    for (const line of ['', '# shop shopone (install 126001)', `${cronMarker(install)} `, ' ' + cronMarker(install), '# shop ShopOne (install 1), written by the provisioning engine: do not edit']) {
      expect(parseCronMarker(line)).toBeNull();
    }
    for (const name of ['shop-', 'shop-a.b', 'shop-A', '.shop-a.tmp', 'shop-a-b', 'other']) expect(CRON_FILE_NAME.test(name)).toBe(false);
  });
});
