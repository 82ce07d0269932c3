import { posix } from 'node:path';
import type { Server } from '@app/catalog';
import { checkServerPath, type HostExecutor } from '@app/hosts';
import { newGenerationName, PRUNE_GENERATIONS_SCRIPT } from '../dispatcher-files.js';

/**
 * The php-fpm pool files of one handler, as generations under its pool dir
 * (as DispatcherFiles are nginx's): `generations/<name>/<fs>.conf`, with
 * `current` (what the master's php-fpm.conf includes:
 * `include=<pool dir>/current/*.conf`) and `last-good` as relative
 * symlinks, the configs `php-fpm -t` checks a generation with in `tests/`,
 * the pools' sockets in `run/` (root's, 0755) and their access logs in
 * `logs/`. A new generation is hard links to the live one plus the files
 * that changed; the swap is a symlink renamed over `current`. Every
 * command is a constant script with data as arguments or stdin.
 */

export const POOL_GENERATIONS_DIR = 'generations';
export const POOL_TESTS_DIR = 'tests';
const GENERATION = /^g[0-9a-z]{6,12}-[0-9a-f]{4}$/;
const POOL_FILE = /^[a-z][a-z0-9]{0,31}\.conf$/;
/** The pool of the test config (a name no install's fs name can be: it has dashes). */
export const SENTINEL_POOL = 'engine-test-sentinel';

export const isPoolFile = (name: string) => POOL_FILE.test(name);
/**
 * What `current` points at before the first apply (made by the first
 * inspect, or by whoever sets the handler up before its php-fpm first
 * starts): php-fpm refuses to start when its include's directory is missing.
 */
export const EMPTY_POOL_GENERATION = 'g0000000-0000';
export const newPoolGenerationName = newGenerationName;

export interface PoolDirState {
  current: string | null;
  lastGood: string | null;
  generations: string[];
  /** `<fs>.conf` of the current generation → sha256 of its content. */
  hashes: Map<string, string>;
  /** The new generation inspect linked the live files into, if asked to and there was a live one. */
  cloned: string | null;
  strayTests: boolean;
}

/** A file of a new generation: linked from the live generation (unchanged), or written. */
export type PlannedPoolFile = { name: string; link: true } | { name: string; content: string };

/** Where a pool of a generation listens, for the wait after a reload. */
export type ListenAddress = { socket: string } | { ip: string; port: number };

/** The running master as found before a reload: what restarts it if the reload kills it. */
export interface FpmMaster {
  exe: string;
  cwd: string;
  conf: string;
}

/**
 * What a reload found: done (the master came back and every pool of the
 * generation listens), no master (no pid file or no such process), a pid
 * file naming a process that is not a php-fpm master (never signalled),
 * the master gone (php-fpm exits when the new config fails to load: a port
 * taken...), or not back in time.
 */
export type FpmReloadOutcome = 'reloaded' | 'not-running' | 'stale-pid' | 'exited' | 'timeout';

/**
 * Prints `current <link>`, `last-good <link>`, a `generation <name>` line per
 * directory, then `sha256sum` lines of the live generation's pool files.
 * Makes the dirs the pipeline uses (`run/` root's, 0755). Given a new
 * generation's name, it also hard-links every live file into it.
 */
const INSPECT_SCRIPT = String.raw`
use strict; use warnings;
my ($root, $clone) = @ARGV;
chdir($root) or die "cannot enter $root: $!\n";
for my $d ('generations', 'tests', 'logs', 'run') { -d $d or mkdir($d, 0755) or die "cannot create $root/$d: $!\n"; }
if ($> == 0) { chown(0, 0, 'run') or die "cannot chown $root/run: $!\n"; }
chmod(0755, 'run') or die "cannot chmod $root/run: $!\n";
# php-fpm refuses to start when the directory its include names is missing: there is always a current, an empty generation at first.
if (!-l 'current' && !-e 'current') {
  -d 'generations/g0000000-0000' or mkdir('generations/g0000000-0000', 0755) or die "cannot create the empty generation: $!\n";
  symlink('generations/g0000000-0000', '.current.lnk-init') or die "cannot create current: $!\n";
  rename('.current.lnk-init', 'current') or die "cannot create current: $!\n";
}
my $cur = readlink('current') // '';
my $lg = readlink('last-good') // '';
print "current $cur\nlast-good $lg\n";
opendir(my $gh, 'generations') or die "cannot list generations: $!\n";
print "generation $_\n" for grep { !/^\.\.?$/ } readdir($gh);
closedir($gh);
opendir(my $th, 'tests') or die "cannot list tests: $!\n";
print "stray-tests\n" if grep { !/^\.\.?$/ } readdir($th);
closedir($th);
exit 0 if $cur eq '' || !-d $cur;
opendir(my $ch, $cur) or die "cannot list $cur: $!\n";
my @files = sort grep { /^[a-z][a-z0-9]{0,31}\.conf$/ && -f "$cur/$_" } readdir($ch);
closedir($ch);
if (defined $clone && $clone ne '') {
  mkdir("generations/$clone") or die "cannot create generations/$clone: $!\n";
  for my $f (@files) { link("$cur/$f", "generations/$clone/$f") or die "cannot link $f into $clone: $!\n"; }
  print "cloned $clone\n";
}
chdir($cur) or die "cannot enter $cur: $!\n";
while (my @chunk = splice(@files, 0, 4000)) { system('sha256sum', '--', @chunk) == 0 or die "sha256sum failed\n"; }
`;

/**
 * Reads NUL-separated words: the live generation's directory (or empty),
 * the new directory, the path and text of its test config, whether it
 * exists already ('1': cloned, or being patched), then records `L name`
 * (hard link from the live one), `W name content` (written as a new file,
 * never through an inode the live one shares) and `D name`. Written files
 * and the directory are fsynced. Prints the number of files written.
 */
const STAGE_SCRIPT = String.raw`
use strict; use warnings; use IO::Handle;
local $/ = "\0";
my @w = <STDIN>;
chomp @w;
my ($from, $to, $test, $testContent, $exists) = splice(@w, 0, 5);
my $many = (grep { $_ eq 'W' } @w) > 32;
if ($exists eq '') { mkdir($to) or die "cannot create $to: $!\n"; } else { -d $to or die "$to does not exist\n"; }
my $written = 0;
while (@w) {
  my $op = shift @w; my $name = shift @w;
  $name =~ /^[a-z][a-z0-9]{0,31}\.conf$/ or die "bad name $name\n";
  if ($op eq 'L') {
    unlink("$to/$name") or $!{ENOENT} or die "cannot replace $to/$name: $!\n";
    link("$from/$name", "$to/$name") or die "cannot link $from/$name: $!\n";
  }
  elsif ($op eq 'D') { unlink("$to/$name") or $!{ENOENT} or die "cannot remove $to/$name: $!\n"; }
  elsif ($op eq 'W') {
    my $content = shift @w;
    unlink("$to/$name") or $!{ENOENT} or die "cannot replace $to/$name: $!\n";
    open(my $fh, '>', "$to/$name") or die "cannot write $to/$name: $!\n";
    print $fh $content or die "cannot write $to/$name: $!\n";
    $many or ($fh->flush and $fh->sync) or die "cannot write $to/$name: $!\n";
    close($fh) or die "cannot write $to/$name: $!\n";
    $written++;
  } else { die "bad record $op\n"; }
}
system('sync', '-f', $to) == 0 or die "cannot sync $to\n" if $many;
open(my $dh, '<', $to) or die "cannot open $to: $!\n"; $dh->sync or die "cannot sync $to: $!\n"; close($dh);
open(my $th, '>', $test) or die "cannot write $test: $!\n";
print $th $testContent or die "cannot write $test: $!\n";
close($th) or die "cannot write $test: $!\n";
print "$written\n";
`;

/** The php-fpm binary: the running master's (the pid file's process), else the first found in the system dirs. */
const FIND_BINARY = String.raw`
pidfile=$1
if [ -s "$pidfile" ]; then
  p=$(cat "$pidfile")
  case "$p" in ''|*[!0-9]*) ;; *)
    e=$(readlink "/proc/$p/exe" 2>/dev/null) && case "$e" in */php-fpm*) [ -x "$e" ] && { echo "$e"; exit 0; };; esac;;
  esac
fi
for n in php-fpm php-fpm8.4 php-fpm8.3 php-fpm8.2 php-fpm8.1 php-fpm8.0 php-fpm7.4; do
  for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin /sbin /bin; do
    [ -x "$d/$n" ] && { echo "$d/$n"; exit 0; }
  done
done
exit 127
`;

/**
 * Swaps (when given a generation: `last-good` to the previous one, then
 * `current`), then reloads the master named by the pid file: SIGUSR2 (php-fpm
 * re-executes itself on the new config, keeping its listening sockets), and
 * waits until the master is back: its pid file rewritten, the master asleep
 * in its event loop, and every address read from stdin (`unix <path>` or
 * `tcp <ip> <port>`) listening (from /proc/net: connecting would make an
 * ondemand pool fork a worker). With a master given (`exe`, `cwd`, `conf`)
 * and none running, starts it (`-D`) instead and waits the same way.
 * Prints `master <exe>\t<cwd>\t<conf>` before signalling. Exit 0 back, 10
 * not running, 12 the pid file names a process that is no php-fpm master,
 * 13 the master exited (the new config failed to load), 11 not in time.
 */
const RELOAD_SCRIPT = String.raw`
use strict; use warnings; use Socket qw(AF_INET6 inet_pton inet_aton);
$| = 1;
my ($root, $generation, $previous, $pidfile, $limit, $mexe, $mcwd, $mconf) = @ARGV;
local $/;
my @want = grep { $_ ne '' } split(/\n/, <STDIN> // '');
chdir($root) or die "cannot enter $root: $!\n";
sub flip {
  my ($target, $link) = @_;
  my $temp = ".$link.lnk-$$";
  symlink($target, $temp) or die "cannot create $temp: $!\n";
  rename($temp, $link) or do { my $e = $!; unlink $temp; die "cannot replace $link: $e\n" };
}
if ($generation ne '') {
  unlink glob('.current.lnk-* .last-good.lnk-*');
  flip("generations/$previous", 'last-good') if $previous ne '';
  flip("generations/$generation", 'current');
  unlink glob("tests/$generation.* tests/$generation-*");
}
sub slurp { my ($f) = @_; open(my $h, '<', $f) or return undef; local $/; my $c = <$h>; close($h); return $c; }
sub mtime { return '' unless -e $pidfile; open(my $h, '-|', 'stat', '-c', '%.9Y', '--', $pidfile) or return ''; my $m = <$h> // ''; close($h); $m =~ s/\s+$//; return $m; }
sub pid_of { my $p = slurp($pidfile) // ''; $p =~ s/\s+//g; return $p =~ /^[0-9]+$/ ? $p : undef; }
sub state_of { my ($p) = @_; my $s = slurp("/proc/$p/stat") // return undef; return $s =~ /\)\s+(\S)/ ? $1 : undef; }
sub alive { my ($p) = @_; return 0 unless kill(0, $p); my $s = state_of($p); return !defined $s || ($s ne 'Z' && $s ne 'X'); }
sub hex4 { my ($ip) = @_; return sprintf('%08X', unpack('L', inet_aton($ip))); }
sub hex16 { my ($ip) = @_; return join('', map { sprintf('%08X', $_) } unpack('L4', inet_pton(AF_INET6, $ip))); }
sub listening {
  return 1 unless @want;
  my %have;
  for my $line (split /\n/, slurp('/proc/net/unix') // '') {
    my @f = split ' ', $line;
    $have{"unix $f[7]"} = 1 if @f >= 8 && $f[3] =~ /^0*10000$/ && $f[5] eq '01';
  }
  for my $t (['tcp', '/proc/net/tcp'], ['tcp6', '/proc/net/tcp6']) {
    for my $line (split /\n/, slurp($t->[1]) // '') {
      my @f = split ' ', $line;
      next unless @f > 3 && $f[3] eq '0A';
      my ($a, $p) = split /:/, $f[1];
      $have{"$t->[0] $a " . hex($p)} = 1;
    }
  }
  for my $w (@want) {
    my ($kind, $addr, $port) = split ' ', $w;
    my $key = $kind eq 'unix' ? "unix $addr" : $addr =~ /:/ ? "tcp6 " . hex16($addr) . " $port" : "tcp " . hex4($addr) . " $port";
    return 0 unless $have{$key};
  }
  return 1;
}
# Its process image before the signal: a re-executed master has a new stack address (ASLR), its pid file rewritten (checked less often: a process each look).
sub stack_of { my ($p) = @_; my $s = slurp("/proc/$p/stat") // return ''; $s =~ s/^.*\)\s+//s; my @f = split(' ', $s); return $f[25] // ''; }
my $before = mtime();
my $pid = pid_of();
my $first = $pid // '';
my $stack = defined $pid ? stack_of($pid) : '';
my $start = time;
my $restarted = 0;
# Started again (a reload killed it): as it was, in the background.
sub restart {
  $restarted = 1;
  chdir($mcwd) or chdir('/');
  if (system($mexe, '--fpm-config', $mconf, '-D') != 0) { print STDERR "starting $mexe --fpm-config $mconf -D failed (status $?)\n"; exit 13; }
  chdir($root);
  $pid = pid_of();
  unless (defined $pid) { print STDERR "the started master wrote no pid to $pidfile\n"; exit 13; }
}
if (!defined $pid || !alive($pid)) {
  exit 10 if $mexe eq '';
  restart();
} else {
  my $exe = readlink("/proc/$pid/exe") // exit 12;
  $exe =~ s/ \(deleted\)$//;
  exit 12 unless $exe =~ m{/php-fpm[0-9.]*$};
  my $title = slurp("/proc/$pid/cmdline") // exit 12;
  $title =~ s/\0/ /g;
  exit 12 unless $title =~ /^php-fpm: master process \((.*)\)\s*$/;
  my $conf = $1;
  my $cwd = readlink("/proc/$pid/cwd") // '/';
  print "master $exe\t$cwd\t$conf\n";
  kill('USR2', $pid) or exit 10;
}
# A daemonized master forks again when it re-executes: the master is whoever the pid file names once rewritten.
my $dead = 0;
my $looks = 0;
my $changed = 0;
while (1) {
  my $now = pid_of();
  $pid = $now if defined $now && $now ne $pid && alive($now);
  if (alive($pid)) {
    $dead = 0;
    $changed ||= $pid ne $first || stack_of($pid) ne $stack || ($looks++ % 25 == 24 && mtime() ne $before);
    if ($changed) {
      my $wchan = slurp("/proc/$pid/wchan") // '';
      exit 0 if $wchan =~ /poll|select|wait/ && listening();
    }
  } elsif (++$dead >= 75) {
    # Gone for 1.5 s (not a daemon handing over to its new process): it died of the config it was loading. Started again once, when told how.
    if ($mexe ne '' && !$restarted) { restart(); $dead = 0; next; }
    print STDERR "the master (pid $pid) exited\n"; exit 13;
  }
  exit 11 if time - $start > $limit;
  select(undef, undef, undef, 0.02);
}
`;

/**
 * Before a reload: which TCP addresses of pools (stdin: `<file> <ip> <port>`
 * lines) another process listens on (php-fpm -t cannot know; the reloaded
 * master would fail to bind it and exit, taking every pool down). A
 * listening socket the master (the pid file's process) holds is its own.
 * Prints `taken <file> <ip>:<port>` per address taken.
 */
const PREFLIGHT_SCRIPT = String.raw`
use strict; use warnings; use Socket qw(AF_INET6 inet_pton inet_aton);
my ($pidfile) = @ARGV;
local $/;
my @want = grep { $_ ne '' } split(/\n/, <STDIN> // '');
sub slurp { my ($f) = @_; open(my $h, '<', $f) or return undef; local $/; my $c = <$h>; close($h); return $c; }
my %mine;
my $pid = slurp($pidfile) // '';
$pid =~ s/\s+//g;
if ($pid =~ /^[0-9]+$/ && opendir(my $fh, "/proc/$pid/fd")) {
  for my $fd (readdir($fh)) { my $l = readlink("/proc/$pid/fd/$fd") // next; $mine{$1} = 1 if $l =~ /^socket:\[(\d+)\]$/; }
  closedir($fh);
}
my %listen;
for my $t (['4', '/proc/net/tcp'], ['6', '/proc/net/tcp6']) {
  for my $line (split /\n/, slurp($t->[1]) // '') {
    my @f = split ' ', $line;
    next unless @f > 9 && $f[3] eq '0A';
    my ($a, $p) = split /:/, $f[1];
    push @{$listen{hex($p)}}, [$t->[0], $a, $f[9]];
  }
}
for my $w (@want) {
  my ($file, $ip, $port) = split ' ', $w;
  my $six = $ip =~ /:/;
  my $hex = $six ? join('', map { sprintf('%08X', $_) } unpack('L4', inet_pton(AF_INET6, $ip))) : sprintf('%08X', unpack('L', inet_aton($ip)));
  for my $l (@{$listen{$port} // []}) {
    my ($fam, $a, $inode) = @$l;
    next if $mine{$inode};
    # The same address, or every address of its family (a wildcard bind takes the port on each).
    my $hit = ($fam eq ($six ? '6' : '4')) && ($a eq $hex || $a =~ /^0+$/);
    $hit ||= $fam eq '6' && !$six && $a =~ /^0+$/;
    if ($hit) { print "taken $file $ip:$port\n"; last; }
  }
}
`;

export class PoolFiles {
  constructor(
    private readonly executor: HostExecutor,
    readonly server: Server,
  ) {}

  get root(): string {
    if (!this.server.phpFpmPoolDir) throw new Error(`${this.server.hostname} has no php-fpm pool dir`);
    return checkServerPath(this.server, this.server.phpFpmPoolDir);
  }

  dir(generation: string): string {
    return posix.join(this.root, POOL_GENERATIONS_DIR, checkPoolGeneration(generation));
  }

  testConfigPath(generation: string): string {
    return posix.join(this.root, POOL_TESTS_DIR, `${checkPoolGeneration(generation)}.conf`);
  }

  /**
   * What `php-fpm -t` checks a generation with: a [global] section logging
   * beside it, a sentinel pool (php-fpm refuses a config without pools) and
   * the generation's pool files.
   */
  testConfig(generation: string, sentinel: { user: string; group: string }): string {
    const tests = posix.join(this.root, POOL_TESTS_DIR);
    return [
      `; Written by the provisioning engine to test a generation: not loaded by the running php-fpm.`,
      '[global]',
      `pid = ${tests}/${generation}.pid`,
      `error_log = ${tests}/${generation}.log`,
      `include = ${this.dir(generation)}/*.conf`,
      `[${SENTINEL_POOL}]`,
      `user = ${sentinel.user}`,
      `group = ${sentinel.group}`,
      `listen = ${tests}/${generation}.sock`,
      'pm = ondemand',
      'pm.max_children = 1',
      '',
    ].join('\n');
  }

  async inspect(cloneInto?: string): Promise<PoolDirState> {
    const out = await this.executor.mustRun(this.server, ['perl', '-e', INSPECT_SCRIPT, this.root, cloneInto ? checkPoolGeneration(cloneInto) : ''], { timeoutMs: 300_000 });
    const state: PoolDirState = { current: null, lastGood: null, generations: [], hashes: new Map(), cloned: null, strayTests: false };
    for (const line of out.split('\n')) {
      if (line.startsWith('current ')) state.current = generationOfLink(line.slice(8));
      else if (line.startsWith('last-good ')) state.lastGood = generationOfLink(line.slice(10));
      else if (line.startsWith('generation ')) state.generations.push(line.slice(11));
      else if (line.startsWith('cloned ')) state.cloned = line.slice(7);
      else if (line === 'stray-tests') state.strayTests = true;
      else {
        const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(line);
        if (m && POOL_FILE.test(m[2]!)) state.hashes.set(m[2]!, m[1]!);
      }
    }
    return state;
  }

  /**
   * Stages (or, `exists`, patches) a generation; returns the number of files
   * written. `exists`: the directory is there already (cloned from the live
   * one, or a generation being patched after php-fpm refused a pool).
   */
  async stage(generation: string, from: string | null, plan: readonly PlannedPoolFile[], testConfig: string, options: { exists?: boolean; removed?: readonly string[] } = {}): Promise<number> {
    const records: string[] = [from ? this.dir(from) : '', this.dir(generation), this.testConfigPath(generation), testConfig, options.exists ? '1' : ''];
    for (const file of plan) {
      if (!POOL_FILE.test(file.name)) throw new Error(`refused pool file name ${JSON.stringify(file.name)}`);
      if ('link' in file) {
        if (!from) throw new Error(`${file.name}: nothing to link it from`);
        if (!options.exists) records.push('L', file.name);
      } else {
        if (file.content.includes('\0')) throw new Error(`${file.name}: a NUL byte in a pool file`);
        records.push('W', file.name, file.content);
      }
    }
    for (const name of options.exists ? (options.removed ?? []) : []) {
      if (!POOL_FILE.test(name)) throw new Error(`refused pool file name ${JSON.stringify(name)}`);
      records.push('D', name);
    }
    const out = await this.executor.mustRun(this.server, ['perl', '-e', STAGE_SCRIPT], { input: `${records.join('\0')}\0`, timeoutMs: 300_000 });
    return Number(out.trim());
  }

  /** Puts one file of a staged generation back on the live one's (`link`) or takes it out. */
  async patch(generation: string, from: string | null, name: string, action: 'link' | 'remove', testConfig: string): Promise<void> {
    if (!POOL_FILE.test(name)) throw new Error(`refused pool file name ${JSON.stringify(name)}`);
    const records = [from ? this.dir(from) : '', this.dir(generation), this.testConfigPath(generation), testConfig, '1', action === 'link' ? 'L' : 'D', name];
    if (action === 'link' && !from) throw new Error(`${name}: nothing to link it from`);
    await this.executor.mustRun(this.server, ['perl', '-e', STAGE_SCRIPT], { input: `${records.join('\0')}\0`, timeoutMs: 120_000 });
  }

  /** The php-fpm binary to test with: the running master's, else one found in the system dirs; null when there is none. */
  async binary(pidFile: string): Promise<string | null> {
    const result = await this.executor.run(this.server, ['sh', '-c', FIND_BINARY, 'find-php-fpm', checkPidFile(pidFile)]);
    const path = result.stdout.trim();
    return result.exitCode === 0 && /^\/[A-Za-z0-9._\/-]+$/.test(path) ? path : null;
  }

  /** `php-fpm -t` on a staged generation (its test config written by `stage`). */
  async test(binary: string, generation: string): Promise<{ ok: boolean; output: string }> {
    const result = await this.executor.run(this.server, [binary, '-t', '-y', this.testConfigPath(generation)], { timeoutMs: 600_000 });
    return { ok: result.exitCode === 0, output: `${result.stderr}\n${result.stdout}`.trim() };
  }

  /**
   * Points `current` at the generation (`last-good` at `previous`), then
   * reloads the master and waits for it and every listed address (no
   * generation: reloads only). `restart`: the master to start again if none runs.
   */
  async swapAndReload(
    generation: string | null,
    previous: string | null,
    pidFile: string,
    listens: readonly ListenAddress[],
    limitSeconds: number,
    restart?: FpmMaster,
  ): Promise<{ outcome: FpmReloadOutcome; master: FpmMaster | null; detail: string }> {
    const input = listens.map((l) => ('socket' in l ? `unix ${checkListenPath(l.socket)}` : `tcp ${checkIp(l.ip)} ${Number(l.port)}`)).join('\n');
    const argv = [
      'perl', '-e', RELOAD_SCRIPT, this.root,
      generation ? checkPoolGeneration(generation) : '',
      previous ? checkPoolGeneration(previous) : '',
      checkPidFile(pidFile), String(Math.ceil(limitSeconds)),
      restart ? checkListenPath(restart.exe) : '', restart ? checkListenPath(restart.cwd) : '', restart ? checkConfPath(restart.conf) : '',
    ];
    const result = await this.executor.run(this.server, argv, { input, timeoutMs: (limitSeconds + 60) * 1000 });
    const m = /^master ([^\t\n]+)\t([^\t\n]+)\t([^\n]+)$/m.exec(result.stdout);
    const master = m ? { exe: m[1]!, cwd: m[2]!, conf: m[3]! } : null;
    const outcomes: Record<number, FpmReloadOutcome> = { 0: 'reloaded', 10: 'not-running', 11: 'timeout', 12: 'stale-pid', 13: 'exited' };
    const outcome = outcomes[result.exitCode];
    if (!outcome) throw new Error(`reloading php-fpm on ${this.server.hostname} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    return { outcome, master, detail: result.stderr.trim().slice(0, 500) };
  }

  /** The pools' TCP addresses another process than the master listens on: `file → ip:port`. */
  async takenPorts(pidFile: string, listens: readonly { file: string; ip: string; port: number }[]): Promise<Map<string, string>> {
    const taken = new Map<string, string>();
    if (listens.length === 0) return taken;
    const input = listens.map((l) => {
      if (!POOL_FILE.test(l.file)) throw new Error(`refused pool file name ${JSON.stringify(l.file)}`);
      return `${l.file} ${checkIp(l.ip)} ${Number(l.port)}`;
    }).join('\n');
    const out = await this.executor.mustRun(this.server, ['perl', '-e', PREFLIGHT_SCRIPT, checkPidFile(pidFile)], { input, timeoutMs: 60_000 });
    for (const line of out.split('\n')) {
      const m = /^taken (\S+) (\S+)$/.exec(line);
      if (m) taken.set(m[1]!, m[2]!);
    }
    return taken;
  }

  /** Removes every generation but `staging` and those kept, and every test file but `staging`'s. */
  async prune(staging: string | null, keep: readonly (string | null)[]): Promise<void> {
    const names = keep.filter((g): g is string => g !== null).map(checkPoolGeneration);
    await this.executor.mustRun(this.server, ['perl', '-e', PRUNE_GENERATIONS_SCRIPT, this.root, staging ? checkPoolGeneration(staging) : '', ...names], { timeoutMs: 300_000 });
  }

  async remove(generation: string): Promise<void> {
    await this.executor.remove(this.server, this.dir(generation));
  }

  /** A file of a generation, or null when it has none. */
  async read(generation: string, name: string): Promise<string | null> {
    if (!POOL_FILE.test(name)) throw new Error(`refused pool file name ${JSON.stringify(name)}`);
    const result = await this.executor.run(this.server, ['cat', '--', posix.join(this.dir(generation), name)]);
    return result.exitCode === 0 ? result.stdout : null;
  }
}

export function checkPoolGeneration(name: string): string {
  if (!GENERATION.test(name)) throw new Error(`refused generation name ${JSON.stringify(name)}`);
  return name;
}

function generationOfLink(target: string): string | null {
  const m = /^generations\/(g[0-9a-z]{6,12}-[0-9a-f]{4})$/.exec(target.trim());
  return m ? m[1]! : null;
}

function checkPidFile(pidFile: string): string {
  if (!/^\/[A-Za-z0-9._\/-]+$/.test(pidFile) || pidFile.split('/').includes('..')) throw new Error(`refused pid file ${JSON.stringify(pidFile)}`);
  return pidFile;
}

function checkListenPath(path: string): string {
  if (!/^\/[A-Za-z0-9._@+\/-]*$/.test(path) || path.split('/').includes('..')) throw new Error(`refused path ${JSON.stringify(path)}`);
  return path;
}

/** The master's config as its process title shows it: absolute or relative to its cwd, printable, no line break. */
function checkConfPath(path: string): string {
  if (!/^[A-Za-z0-9._@+\/-]+$/.test(path) || path.split('/').includes('..')) throw new Error(`refused php-fpm config path ${JSON.stringify(path)}`);
  return path;
}

function checkIp(ip: string): string {
  if (!/^[0-9a-fA-F:.]+$/.test(ip)) throw new Error(`refused IP ${JSON.stringify(ip)}`);
  return ip;
}
