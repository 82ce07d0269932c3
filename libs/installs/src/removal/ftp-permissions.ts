import { posix } from 'node:path';
import { Injectable } from '@nestjs/common';
import { checkServerPath, ServerAccess } from '@app/hosts';
import { PHP_PRIVATE_DIR, PHP_SESSIONS_DIR, PHP_TMP_DIR, phpUserOf } from '@app/webserver';
import { ftpRootOn, homeOn, type BuildContext } from '../build-saga/build-context.js';
import { InstallBuildSteps } from '../build-saga/build-steps.js';
import { InstallUsers } from '../build-saga/install-users.js';

/** A path the reset owns: what the build made it (owner `user:group`, mode; recursive owner for trees). */
interface Expected {
  path: string;
  owner: string;
  mode: number | null;
  recursive: boolean;
}

export interface FtpChange {
  path: string;
  before: string;
  after: string;
}

export interface FtpResetReport {
  server: string;
  checked: number;
  changes: FtpChange[];
  /** Changes beyond those listed (a tree with thousands of files). */
  more: number;
}

/** At most this many changes are listed (the rest are counted). */
const LISTED = 500;

const LIST_SCRIPT = String.raw`
while [ $# -gt 1 ]; do
  rec=$1; p=$2; shift 2
  [ -e "$p" ] || [ -L "$p" ] || { printf 'missing\t%s\n' "$p"; continue; }
  if [ "$rec" = r ]; then find -P "$p" ! -type l -printf '%u:%g\t%m\t%p\n'; else find -P "$p" -maxdepth 0 -printf '%u:%g\t%m\t%p\n'; fi
done
`;

/**
 * The FTP tree and the writable directories of an install as the build
 * makes them (the ftp step: the FTP root, made by the engine (the targets
 * its bind mounts land in are the ftp step's, covered once mounted); the tree step: the copies as copied
 * from the release (the engine's), the writable directories the PHP user's
 * (setgid, 2770 where the engine manages PHP), its private PHP directories
 * 0700), compared with what is on the master, and put back.
 */
@Injectable()
export class FtpPermissions {
  constructor(
    private readonly access: ServerAccess,
    private readonly builds: InstallBuildSteps,
    private readonly users: InstallUsers,
  ) {}

  /** What would change (nothing is changed). */
  async plan(context: BuildContext): Promise<{ report: FtpResetReport; expected: Expected[] }> {
    const { master } = context;
    const expected = await this.expected(context);
    const specs = expected.flatMap((e) => [e.recursive ? 'r' : 'd', checkServerPath(master, e.path, { allowRoot: false })]);
    const out = await this.access.executorFor(master).mustRun(master, ['sh', '-c', LIST_SCRIPT, 'ftp-list', ...specs], { timeoutMs: 5 * 60_000 });
    const changes: FtpChange[] = [];
    let checked = 0;
    for (const line of out.split('\n').filter(Boolean)) {
      const [owner, mode, path] = line.split('\t') as [string, string, string];
      if (owner === 'missing') {
        const want = expected.find((e) => e.path === mode)!;
        changes.push({ path: mode, before: 'missing', after: describe(want.owner, want.mode ?? 0o755) });
        continue;
      }
      checked++;
      const want = expected.filter((e) => path === e.path || (e.recursive && path.startsWith(`${e.path}/`))).sort((a, b) => b.path.length - a.path.length)[0];
      if (!want) continue;
      const modeNow = parseInt(mode, 8);
      const modeWant = path === want.path && want.mode !== null ? want.mode : modeNow;
      if (owner !== want.owner || modeNow !== modeWant) changes.push({ path, before: describe(owner, modeNow), after: describe(want.owner, modeWant) });
    }
    return { report: { server: master.hostname, checked, changes: changes.slice(0, LISTED), more: Math.max(0, changes.length - LISTED) }, expected };
  }

  /** Puts every owner and mode back (idempotent), and answers what it changed. */
  async reset(context: BuildContext): Promise<FtpResetReport> {
    const { master } = context;
    const { report, expected } = await this.plan(context);
    if (report.changes.length === 0) return report;
    const executor = this.access.executorFor(master);
    // Missing directories come back as the build makes them (the FTP root, a mount target, a writable dir).
    await executor.mkdirs(master, expected.filter((e) => !e.recursive || e.mode !== null).map((e) => e.path));
    for (const e of expected) {
      await executor.chown(master, [e.path], e.owner, { recursive: e.recursive });
      if (e.mode !== null) await executor.chmod(master, [e.path], e.mode);
    }
    return report;
  }

  private async expected(context: BuildContext): Promise<Expected[]> {
    const { install, master, group, revision, manifest } = context;
    const executor = this.access.executorFor(master);
    const home = homeOn(master, install);
    // What the engine makes (the home, the FTP root, the mount targets) is the engine's user's, as the home is.
    const engine = (await executor.mustRun(master, ['stat', '-c', '%U:%G', '--', checkServerPath(master, home)])).trim();
    const plan = await this.builds.treePlan(master, group, revision, manifest);
    const managed = this.users.managed(master);
    const writableOwner = managed ? `${phpUserOf(install)}:${this.users.webGroup()}` : ownerOf(this.users.phpOwner(master, install));
    const ftpRoot = ftpRootOn(master, install);
    const inHome = (p: string) => posix.join(home, p);
    const copiedWritable = plan.writable.filter((w) => plan.copies.some((c) => w === c || w.startsWith(`${c}/`) || c.startsWith(`${w}/`)));
    return [
      // Not the mount targets inside it: placeholders the ftp step makes (a file or a directory, as their source), covered by the mounts.
      { path: ftpRoot, owner: engine, mode: 0o755, recursive: false },
      // Copies as the release has them (the engine's), except what the manifest says is writable.
      ...plan.copies.filter((c) => !copiedWritable.includes(c)).map((c) => ({ path: inHome(c), owner: engine, mode: null, recursive: true })),
      ...plan.writable.map((w) => ({ path: inHome(w), owner: writableOwner, mode: managed ? 0o2770 : 0o770, recursive: copiedWritable.includes(w) })),
      ...(managed ? [PHP_PRIVATE_DIR, PHP_SESSIONS_DIR, PHP_TMP_DIR].map((p) => ({ path: inHome(p), owner: `${phpUserOf(install)}:${phpUserOf(install)}`, mode: 0o700, recursive: false })) : []),
    ];
  }
}

const ownerOf = ({ user, group }: { user: string; group: string }) => `${user}:${group}`;
const describe = (owner: string, mode: number) => `${owner} ${mode.toString(8).padStart(4, '0')}`;
