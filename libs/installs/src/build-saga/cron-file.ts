import type { Install } from '@app/catalog';
import type { ManifestCron } from '@app/codebases';
import { commandLine } from '@app/hosts';

/**
 * An install's cron.d file is `shop-<fs name>` (fs names are lower-case
 * letters and digits): cron skips names with a dot, so the atomic writes'
 * temporary files beside it never run.
 */
export const CRON_FILE_PREFIX = 'shop-';
export const CRON_FILE_NAME = /^shop-([a-z0-9]+)$/;
/** The mode the engine writes cron files with (cron ignores a file others can write). */
export const CRON_FILE_MODE = 0o644;

const MARKER = /^# shop ([a-z0-9]+) \(install (\d+)\), written by the provisioning engine: do not edit$/;

export const cronFileName = (install: Pick<Install, 'fsName'>): string => `${CRON_FILE_PREFIX}${install.fsName}`;

/** The first line of every cron file the engine writes: which install it is for (how the engine recognizes its own files). */
export const cronMarker = (install: Pick<Install, 'id' | 'fsName'>): string =>
  `# shop ${install.fsName} (install ${install.id}), written by the provisioning engine: do not edit`;

/** The install a cron file's first line names, or null: not a line the engine writes. */
export function parseCronMarker(line: string): { fsName: string; installId: number } | null {
  const m = MARKER.exec(line);
  return m ? { fsName: m[1]!, installId: Number(m[2]) } : null;
}

/**
 * The install's cron.d file on one server: each manifest cron run in its
 * home there as `user` (the user its PHP runs as there), an argument vector
 * quoted word by word. The build writes it, the CronFiles task compares
 * against it: one rendering.
 */
export function renderCronFile(install: Pick<Install, 'id' | 'fsName'>, crons: readonly Pick<ManifestCron, 'schedule' | 'command'>[], home: string, user: string): string {
  return [
    cronMarker(install),
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...crons.map((c) => `${c.schedule} ${user} cd ${commandLine([home])} && ${commandLine(c.command)}`),
    '',
  ].join('\n');
}
