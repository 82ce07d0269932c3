import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Server } from '@app/catalog';
import { checkServerPath, type HostExecutor, type RunResult } from '@app/hosts';
import { ACME_TOKEN_MAP_DIRECTIVE, FASTCGI_PARAMS_DIRECTIVES, installFiles, LOG_FORMAT_DIRECTIVE, PROBE_MAP_DIRECTIVE, shopRootMapDirective } from './render.js';

/**
 * The nginx files of one dispatcher, as generations under its nginx conf
 * dir: `generations/<name>/{shops.conf,defaults.conf,shops/*.conf,hosts/*.conf,groups/*.conf,upstreams/*.conf}`, with `current` (what
 * nginx loads: its http block has `include <nginx conf dir>/current/*.conf;`,
 * which matches shops.conf only, and nothing before the first generation)
 * and `last-good` (the generation before, for rollback) as symlinks; the
 * configs `nginx -t` checks generations with live in `tests/`. A new generation is
 * hard links to the live one plus the files that changed, so a one-install
 * change writes one file; the swap is a symlink renamed over `current`.
 * Every command is a constant script with data as arguments or stdin.
 */

export const GENERATIONS_DIR = 'generations';
export const TESTS_DIR = 'tests';
const GENERATION = /^g[0-9a-z]{6,12}-[0-9a-f]{4}$/;
const FILE_NAME = /^((shops|hosts)\/[a-z][a-z0-9]{0,31}\.conf|upstreams\/php_[0-9a-f]{16}\.conf|groups\/g_[0-9a-f]{16}\.conf|shops\.conf|defaults\.conf)$/;
const HOSTS_FILE = /^hosts\/[a-z][a-z0-9]{0,31}\.conf$/;
const INSTALL_FILE = /^(shops|hosts)\/([a-z][a-z0-9]{0,31})\.conf$/;
const UPSTREAM_FILE = /^upstreams\/php_[0-9a-f]{16}\.conf$/;
const GROUP_FILE = /^groups\/g_[0-9a-f]{16}\.conf$/;

/** What is on the dispatcher now. */
export interface DispatcherState {
  current: string | null;
  lastGood: string | null;
  generations: string[];
  /** Every file of the current generation the engine writes (`shops.conf`, `defaults.conf`, `shops/`, `hosts/`, `groups/`, `upstreams/`) → sha256 of its content. */
  hashes: Map<string, string>;
  /** The new generation inspect linked the live files into, if asked to and there was a live one. */
  cloned: string | null;
  /** Test configs lie in `tests/` (a killed run's; a finished run removes its own). */
  strayTests: boolean;
}

/** What `nginx -t` of one install's file takes: the file, its upstream, and the shared server blocks it names (a hosts file). */
export interface AloneTest {
  shop: string;
  upstream: string;
  groups?: readonly string[];
}

/** A generation as staged: its files and their digests (what its manifest says). */
export interface StagedGeneration {
  generation: string;
  hashes: ReadonlyMap<string, string>;
}

/** A file of a new generation: linked from the live generation (unchanged, with its digest there), or written. */
export type PlannedFile = { name: string; link: true; sha256: string } | { name: string; content: string };

export const isHostsFile = (name: string) => HOSTS_FILE.test(name);
/** An install's file, of either kind. */
export const isInstallFile = (name: string) => INSTALL_FILE.test(name);
/** The fs name of an install's file (either kind), or null. */
export const fsNameOfFile = (name: string): string | null => INSTALL_FILE.exec(name)?.[2] ?? null;
export const isUpstreamFile = (name: string) => UPSTREAM_FILE.test(name);
export const isGroupFile = (name: string) => GROUP_FILE.test(name);
export const newGenerationName = () => `g${Date.now().toString(36)}-${randomBytes(2).toString('hex')}`;

/**
 * Prints `current <link>`, `last-good <link>`, a `generation <name>` line per
 * directory, then `sha256sum` lines of the live generation's files: one
 * Perl process (perl-base). A file whose inode, size and modification time
 * are still those its generation's manifest recorded at staging gets the
 * manifest's digest; any other (edited by hand, or no manifest) is hashed,
 * a sha256sum per 4,000 files. Given a new generation's name, it also
 * hard-links every live file into it as it goes (`cloned <name>`): the
 * links a one-install change needs are made while the engine renders.
 */
const INSPECT_SCRIPT = String.raw`
use strict; use warnings;
$| = 1;
my ($root, $known, $clone) = @ARGV;
chdir($root) or die "cannot enter $root: $!\n";
for my $d ('generations', 'tests') { -d $d or mkdir($d) or die "cannot create $root/$d: $!\n"; }
my $cur = readlink('current') // '';
my $lg = readlink('last-good') // '';
print "current $cur\nlast-good $lg\n";
opendir(my $gh, 'generations') or die "cannot list generations: $!\n";
print "generation $_\n" for grep { !/^\.\.?$/ } readdir($gh);
closedir($gh);
opendir(my $th, 'tests') or die "cannot list tests: $!\n";
print "stray-tests\n" if grep { !/^\.\.?$/ } readdir($th);
closedir($th);
exit 0 if $cur eq '' || !-d "$cur/shops";
chdir($cur) or die "cannot enter $cur: $!\n";
my @files = grep { -f $_ } ('shops.conf', 'defaults.conf');
my %names = (upstreams => qr/^php_[0-9a-f]{16}\.conf$/, shops => qr/^[a-z][a-z0-9]{0,31}\.conf$/, hosts => qr/^[a-z][a-z0-9]{0,31}\.conf$/, groups => qr/^g_[0-9a-f]{16}\.conf$/);
for my $d (sort keys %names) {
  opendir(my $sh, $d) or next;
  # The names the engine writes, no other (nor are others linked into a clone).
  push @files, map { "$d/$_" } sort grep { $_ =~ $names{$d} } readdir($sh);
  closedir($sh);
}
my %manifest;
if (open(my $mh, '<', 'manifest')) {
  while (my $line = <$mh>) { chomp $line; my ($hash, $ino, $size, $mtime, $name) = split(' ', $line, 5); $manifest{$name} = [$hash, "$ino $size $mtime"] if defined $name; }
  close($mh);
}
# The engine that staged the live generation knows its manifest: then only what differs from it is printed.
my $quiet = defined $known && $known ne '' && "generations/$known" eq $cur && %manifest;
print "known\n" if $quiet;
my $into = '';
if (defined $clone && $clone ne '') {
  $into = "$root/generations/$clone";
  mkdir($into) or die "cannot create $into: $!\n";
  for my $d ('shops', 'hosts', 'groups', 'upstreams') { mkdir("$into/$d") or die "cannot create $into/$d: $!\n"; }
}
my @hash;
for my $f (@files) {
  my @s = stat($f);
  next unless @s && -f _;
  $into eq '' or link($f, "$into/$f") or die "cannot link $f into $into: $!\n";
  my $m = delete $manifest{$f};
  if ($m && $m->[1] eq "$s[1] $s[7] $s[9]") { print "$m->[0]  $f\n" unless $quiet; } else { push @hash, $f; }
}
if ($quiet) { print "gone $_\n" for sort keys %manifest; }
print "cloned $clone\n" if $into ne '';
while (my @chunk = splice(@hash, 0, 4000)) { system('sha256sum', '--', @chunk) == 0 or die "sha256sum failed\n"; }
`;

/**
 * Reads NUL-separated words: the live generation's directory (or empty),
 * the new directory, the path and text of its test config, whether inspect
 * cloned the live generation into it ('1' or empty), then records:
 * `L name` (hard link from the live one), `W name content` (written; in a
 * clone, as a new file, never through the inode the live one shares) and,
 * in a clone, `D name` (unlinked). Written files and the new directories
 * are fsynced (durable before anything points at them). Only perl-base.
 */
const STAGE_SCRIPT = String.raw`
use strict; use warnings; use IO::Handle;
local $/ = "\0";
my @w = <STDIN>;
chomp @w;
my ($from, $to, $test, $testContent, $cloned) = splice(@w, 0, 5);
# A few files: fsync each. Many (a first apply): one syncfs of the filesystem at the end is cheaper.
my $many = (grep { $_ eq 'W' } @w) > 32;
if ($cloned eq '') {
  mkdir($to) or die "cannot create $to: $!\n";
  for my $d ('shops', 'hosts', 'groups', 'upstreams') { mkdir("$to/$d") or die "cannot create $to/$d: $!\n"; }
} else { -d "$to/hosts" or die "$to was not cloned\n"; }
my $written = 0;
while (@w) {
  my $op = shift @w; my $name = shift @w;
  if ($op eq 'L') { link("$from/$name", "$to/$name") or die "cannot link $from/$name: $!\n"; }
  elsif ($op eq 'D') { unlink("$to/$name") or $!{ENOENT} or die "cannot remove $to/$name: $!\n"; }
  elsif ($op eq 'W') {
    my $content = shift @w;
    unlink("$to/$name") or $!{ENOENT} or die "cannot replace $to/$name: $!\n" if $cloned ne '';
    open(my $fh, '>', "$to/$name") or die "cannot write $to/$name: $!\n";
    print $fh $content or die "cannot write $to/$name: $!\n";
    $many or ($fh->flush and $fh->sync) or die "cannot write $to/$name: $!\n";
    close($fh) or die "cannot write $to/$name: $!\n";
    $written++;
  } else { die "bad record $op\n"; }
}
# The new directories' entries on disk too: a power cut after the swap must not find them empty.
system('sync', '-f', $to) == 0 or die "cannot sync $to\n" if $many;
for my $d ("$to/shops", "$to/hosts", "$to/groups", "$to/upstreams", $to) { open(my $dh, '<', $d) or die "cannot open $d: $!\n"; $dh->sync or die "cannot sync $d: $!\n"; close($dh); }
# The config nginx -t checks this generation with (not needed after a crash: no fsync).
open(my $th, '>', $test) or die "cannot write $test: $!\n";
print $th $testContent or die "cannot write $test: $!\n";
close($th) or die "cannot write $test: $!\n";
print "$written\n";
`;

/**
 * Reads NUL-separated words: a generation's directory, then `name sha256`
 * pairs; writes its `manifest` (digest, inode, size and modification time
 * of each file: the next inspect hashes only files that changed since),
 * through a temporary file renamed into place. Not fsynced: a manifest lost
 * to a crash only means the next inspect hashes everything.
 */
const MANIFEST_SCRIPT = String.raw`
use strict; use warnings;
local $/ = "\0";
my @w = <STDIN>;
chomp @w;
my $dir = shift @w;
my @lines;
while (@w) {
  my $name = shift @w; my $hash = shift @w;
  $hash =~ /^[0-9a-f]{64}$/ or die "bad digest for $name\n";
  my @s = stat("$dir/$name") or die "cannot stat $dir/$name: $!\n";
  push @lines, "$hash $s[1] $s[7] $s[9] $name\n";
}
open(my $mh, '>', "$dir/.manifest.$$") or die "cannot write $dir/.manifest.$$: $!\n";
print $mh @lines or die "cannot write $dir/.manifest.$$: $!\n";
close($mh) or die "cannot write $dir/.manifest.$$: $!\n";
rename("$dir/.manifest.$$", "$dir/manifest") or die "cannot write $dir/manifest: $!\n";
`;

/**
 * The nginx master the pid file names (perl, the first argument), checked
 * before anything signals it: exit 10 not running (no pid file, or no such
 * process), 12 the pid file names a process that is not an nginx master
 * (stale: a pid the system gave to another process since); `$master` holds
 * its pid after it. `status` runs it alone, the reload after it.
 */
const NGINX_MASTER = String.raw`
use strict; use warnings;
my ($pidfile, $limit) = @ARGV;
sub slurp { my ($f) = @_; open(my $h, '<', $f) or return undef; local $/; my $c = <$h>; close($h); return $c; }
my $text = slurp($pidfile);
exit 10 unless defined $text && $text =~ /\A\s*(\d+)\s*\z/;
my $master = $1;
exit 10 unless kill(0, $master);
my $exe = readlink("/proc/$master/exe");
exit 12 unless defined $exe && $exe =~ m{/nginx(?: \(deleted\))?\z};
my $args = slurp("/proc/$master/cmdline");
exit 12 unless defined $args && $args =~ /\Anginx: master process/;
`;

const STATUS_SCRIPT = `${NGINX_MASTER}exit 0;\n`;

/**
 * The reload, in perl (one process: nothing is started per look while the
 * master parses thousands of installs on the same cores): NGINX_MASTER
 * first (exit 10 not running, 12 not an nginx master), then SIGHUP, then a wait for a worker the master did not have before
 * (nginx starts new workers only once it has loaded the new config), and
 * until every old worker is gone or shutting down (the master tells them
 * to quit about 100 ms after starting the new ones; until then they still
 * accept): its children and their titles read from /proc every 50 ms (ps
 * where the kernel has no children list). Exit 0 reloaded, 11 not in time,
 * 13 refused (the master's [emerg] line on stderr). A config the
 * master refuses at load is an [emerg] line of its own in its error log
 * (its stderr once started), while the old workers go on: looked for every
 * quarter second from where the log ended (a log that is no file, syslog
 * or /dev/null, leaves only the wait for new workers).
 */
const RELOAD_SCRIPT = NGINX_MASTER + String.raw`
sub children {
  my $list = slurp("/proc/$master/task/$master/children");
  return split(' ', $list) if defined $list;
  return map { /(\d+)/ ? $1 : () } qx(ps -o pid= --ppid $master);
}
my %old = map { $_ => 1 } children();
my $log = "/proc/$master/fd/2";
my $off = -f $log ? -s _ : undef;
kill('HUP', $master) or exit 10;
my $start = time;
my ($fresh, $looks) = (0, 0);
while (1) {
  $looks++;
  $fresh = 1 if !$fresh && grep { !$old{$_} } children();
  if (!$fresh && defined $off && $looks % 5 == 0 && open(my $lh, '<', $log)) {
    seek($lh, $off, 0);
    while (my $line = <$lh>) {
      next unless $line =~ /\[emerg\] $master#/;
      print STDERR $line;
      exit 13;
    }
    close($lh);
  }
  if ($fresh) {
    my $busy = 0;
    for my $pid (keys %old) {
      # Gone (or a zombie, whose command line is empty): no longer accepting.
      my $title = slurp("/proc/$pid/cmdline");
      $busy = 1 if defined $title && $title ne '' && $title !~ /shutting down/;
    }
    exit 0 unless $busy;
  }
  exit 11 if time - $start >= $limit;
  select(undef, undef, undef, 0.05);
}
`;

/**
 * Removes every generation under the root's `generations/` but `staging`
 * and those kept (and so what crashed runs left staged), and every file in
 * `tests/` but `staging`'s (an empty `staging`: every one). Shared by the
 * nginx and php-fpm pool generations. Depth first, never following a
 * symlink (it is an entry like any other): an entry is unlinked, and
 * entered only when it is a directory (EISDIR), with no chdir or stat per
 * entry (File::Path's remove_tree cost more on a generation's thousands of
 * links). What cannot be removed is warned about and the rest goes on.
 */
export const PRUNE_GENERATIONS_SCRIPT = String.raw`
use strict; use warnings;
my ($root, $staging, @keep) = @ARGV;
my %keep = map { $_ => 1 } $staging, @keep;
chdir($root) or die "cannot enter $root: $!\n";
opendir(my $th, 'tests') or die "cannot list tests: $!\n";
unlink map { "tests/$_" } grep { !/^\.\.?$/ && ($staging eq '' || !/^\Q$staging\E[.-]/) } readdir($th);
closedir($th);
opendir(my $gh, 'generations') or die "cannot list generations: $!\n";
my @gone = grep { !/^\.\.?$/ && !$keep{$_} } readdir($gh);
closedir($gh);
sub rm_trees {
  for my $dir (@_) {
    opendir(my $dh, $dir) or do { warn "cannot list $dir: $!\n" unless $!{ENOENT}; next };
    my @entries = grep { !/^\.\.?$/ } readdir($dh);
    closedir($dh);
    for my $entry (@entries) {
      my $path = "$dir/$entry";
      next if unlink($path);
      if ($!{EISDIR} || $!{EPERM}) { rm_trees($path); }
      elsif (!$!{ENOENT}) { warn "cannot remove $path: $!\n"; }
    }
    rmdir($dir) or $!{ENOENT} or warn "cannot remove $dir: $!\n";
  }
}
rm_trees(map { "generations/$_" } @gone);
`;

/** Renames a new link over last-good (when a previous generation is given), then over current. */
const SWAP_SCRIPT = String.raw`
use strict; use warnings;
my ($root, $generation, $previous, @reload) = @ARGV;
chdir($root) or die "cannot enter $root: $!\n";
# Temporary links a killed earlier swap left behind.
unlink glob('.current.lnk-* .last-good.lnk-*');
sub flip {
  my ($target, $link) = @_;
  my $temp = ".$link.lnk-$$";
  symlink($target, $temp) or die "cannot create $temp: $!\n";
  rename($temp, $link) or do { my $e = $!; unlink $temp; die "cannot replace $link: $e\n" };
}
flip("generations/$previous", 'last-good') if $previous ne '';
flip("generations/$generation", 'current');
# The configs nginx -t checked it with are done.
unlink glob("tests/$generation.* tests/$generation-*");
# Then, when asked, the reload in the same round trip: in this process when the
# SSH runner's builtin perl runs this script (no new perl on the way to the reload).
if (@reload) {
  Runner::perl_e(@reload) if defined &Runner::perl_e;
  exec('perl', '-e', @reload) or die "cannot run perl: $!\n";
}
`;

/**
 * What a reload found: done and verified, no nginx (no pid file or no such
 * process), a pid file naming a process that is not an nginx master (never
 * signalled), the config refused at load (the master logged why; the old
 * workers serve on), or no new workers in time.
 */
export type ReloadOutcome = 'reloaded' | 'not-running' | 'stale-pid' | 'no-new-workers';

/** The master refused the config at load (its own [emerg] line, the reason): the old workers serve on, `current` names a config nginx does not run. */
export class NginxReloadRefusedError extends Error {
  override name = 'NginxReloadRefusedError';
  constructor(
    readonly server: string,
    readonly reason: string,
  ) {
    super(`nginx on ${server} refused the new config at reload: ${reason}`);
  }
}

export class DispatcherFiles {
  constructor(
    private readonly executor: HostExecutor,
    readonly server: Server,
  ) {}

  get root(): string {
    return checkServerPath(this.server, this.server.nginxConfDir);
  }

  dir(generation: string): string {
    return posix.join(this.root, GENERATIONS_DIR, checkGeneration(generation));
  }

  /**
   * What is on the dispatcher. `known`: a generation's files and digests as
   * staged (its manifest); when it is the live one, only the files that
   * differ from it come back, not ten thousand lines.
   */
  async inspect(known?: StagedGeneration, cloneInto?: string): Promise<DispatcherState> {
    const argv = ['perl', '-e', INSPECT_SCRIPT, this.root, known ? checkGeneration(known.generation) : '', cloneInto ? checkGeneration(cloneInto) : ''];
    const out = await this.executor.mustRun(this.server, argv, { timeoutMs: 300_000 });
    const state: DispatcherState = { current: null, lastGood: null, generations: [], hashes: new Map(), cloned: null, strayTests: false };
    for (const line of out.split('\n')) {
      if (line.startsWith('current ')) state.current = generationOfLink(line.slice(8));
      else if (line.startsWith('last-good ')) state.lastGood = generationOfLink(line.slice(10));
      else if (line.startsWith('generation ')) state.generations.push(line.slice(11));
      else if (line === 'known' && known) state.hashes = new Map(known.hashes);
      else if (line.startsWith('gone ')) state.hashes.delete(line.slice(5));
      else if (line.startsWith('cloned ')) state.cloned = line.slice(7);
      else if (line === 'stray-tests') state.strayTests = true;
      else {
        const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(line);
        if (m && FILE_NAME.test(m[2]!)) state.hashes.set(m[2]!, m[1]!);
      }
    }
    return state;
  }

  /**
   * Stages a generation from the plan; returns the number of files written
   * (links are not writes). `cloned`: inspect already hard-linked the live
   * generation `from` into it, so only what is written or removed is sent.
   */
  async stage(generation: string, from: string | null, plan: readonly PlannedFile[], options: { cloned?: boolean; removed?: readonly string[] } = {}): Promise<number> {
    if (options.cloned && !from) throw new Error('a cloned generation needs the generation it was cloned from');
    const records: string[] = [from ? this.dir(from) : '', this.dir(generation), this.testConfigPath(generation), this.testConfig(generation), options.cloned ? '1' : ''];
    for (const file of plan) {
      if (!FILE_NAME.test(file.name)) throw new Error(`refused file name ${JSON.stringify(file.name)} for a generation`);
      if ('link' in file) {
        if (!from) throw new Error(`${file.name}: nothing to link it from`);
        if (!options.cloned) records.push('L', file.name);
      } else {
        if (file.content.includes('\0')) throw new Error(`${file.name}: a NUL byte in an nginx file`);
        records.push('W', file.name, file.content);
      }
    }
    for (const name of options.cloned ? (options.removed ?? []) : []) {
      if (!FILE_NAME.test(name)) throw new Error(`refused file name ${JSON.stringify(name)} for a generation`);
      records.push('D', name);
    }
    const out = await this.executor.mustRun(this.server, ['perl', '-e', STAGE_SCRIPT], { input: `${records.join('\0')}\0`, timeoutMs: 300_000 });
    return Number(out.trim());
  }

  /** Writes a staged generation's manifest: each file's digest (as given) with its inode, size and modification time there. */
  async writeManifest(staged: StagedGeneration): Promise<void> {
    const records: string[] = [this.dir(staged.generation)];
    for (const [name, digest] of staged.hashes) {
      if (!FILE_NAME.test(name) || !/^[0-9a-f]{64}$/.test(digest)) throw new Error(`refused manifest entry ${JSON.stringify(name)}`);
      records.push(name, digest);
    }
    await this.executor.mustRun(this.server, ['perl', '-e', MANIFEST_SCRIPT], { input: `${records.join('\0')}\0`, timeoutMs: 300_000 });
  }

  /**
   * The config `nginx -t` checks for a generation: the upstreams' and shops'
   * files inside a minimal base (what every dispatcher's nginx.conf has
   * around them). `only` limits it to one install's file, the upstream it
   * uses and the shared server blocks it names, for finding which install fails.
   */
  testConfig(generation: string, only?: AloneTest): string {
    const dir = this.dir(generation);
    const hosts = only ? (HOSTS_FILE.test(only.shop) ? `${dir}/${only.shop}` : null) : `${dir}/hosts/*.conf`;
    return [
      '# Written by the provisioning engine to test a generation: not loaded by the running nginx.',
      `pid ${posix.join(this.root, TESTS_DIR, `${generation}.pid`)};`,
      'error_log stderr;',
      'events {}',
      'http {',
      '    server_names_hash_max_size 65536;',
      '    server_names_hash_bucket_size 128;',
      '    map_hash_max_size 65536;',
      '    map_hash_bucket_size 128;',
      `    ${LOG_FORMAT_DIRECTIVE}`,
      `    ${PROBE_MAP_DIRECTIVE}`,
      `    ${ACME_TOKEN_MAP_DIRECTIVE}`,
      ...FASTCGI_PARAMS_DIRECTIVES.map((d) => `    ${d}`),
      `    ${shopRootMapDirective(hosts)}`,
      `    include ${dir}/${only?.upstream ?? 'upstreams/*.conf'};`,
      ...(only ? (hosts ? (only.groups ?? []) : [only.shop]) : ['shops/*.conf', 'groups/*.conf']).map((f) => `    include ${dir}/${f};`),
      // A glob: a generation staged before default servers existed has none (nginx takes no match).
      ...(only ? [] : [`    include ${dir}/defaults*.conf;`]),
      '}',
      '',
    ].join('\n');
  }

  /** Beside the generations, never inside one: the running nginx includes `current/*.conf`. */
  private testConfigPath(generation: string, only?: { shop: string }): string {
    return posix.join(this.root, TESTS_DIR, `${checkGeneration(generation)}${only ? `-${posix.basename(only.shop, '.conf')}` : ''}.conf`);
  }

  /** `nginx -t` on a generation (its test config written first), or on one of its shop files alone (with its upstream). */
  async test(generation: string, only?: AloneTest): Promise<{ ok: boolean; untestable: boolean; stderr: string }> {
    if (only !== undefined && !(INSTALL_FILE.test(only.shop) && UPSTREAM_FILE.test(only.upstream) && (only.groups ?? []).every((g) => GROUP_FILE.test(g)))) {
      throw new Error(`refused file names ${JSON.stringify(only)}`);
    }
    await this.executor.writeFile(this.server, this.testConfigPath(generation, only), this.testConfig(generation, only));
    return this.nginxTest(generation, only);
  }

  /** `nginx -t` on a generation just staged (`stage` wrote its test config). */
  async testStaged(generation: string): Promise<{ ok: boolean; untestable: boolean; stderr: string }> {
    return this.nginxTest(generation);
  }

  private async nginxTest(generation: string, only?: { shop: string }): Promise<{ ok: boolean; untestable: boolean; stderr: string }> {
    const result = await this.executor.run(this.server, ['nginx', '-t', '-q', '-e', 'stderr', '-p', `${this.dir(generation)}/`, '-c', this.testConfigPath(generation, only)], { timeoutMs: 600_000 });
    return { ok: result.exitCode === 0, untestable: result.exitCode === 127, stderr: result.stderr.trim() };
  }

  /** Whether an nginx master runs for the dispatcher's pid file (`stale-pid`: the pid file names another process). */
  async status(): Promise<'running' | 'not-running' | 'stale-pid'> {
    const result = await this.executor.run(this.server, ['perl', '-e', STATUS_SCRIPT, this.pidFile()]);
    if (result.exitCode === 0) return 'running';
    if (result.exitCode === 10) return 'not-running';
    if (result.exitCode === 12) return 'stale-pid';
    throw new Error(`checking nginx on ${this.server.hostname} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }

  /** Reloads the running nginx and waits for its new workers: `reloaded`, `not-running`, or `no-new-workers`. */
  async reload(limitSeconds: number): Promise<ReloadOutcome> {
    return this.reloaded(await this.executor.run(this.server, ['perl', '-e', ...this.reloadArgs(limitSeconds)], { timeoutMs: (limitSeconds + 30) * 1000 }));
  }

  /**
   * Points `current` at the generation (and `last-good` at the one it
   * replaces), each a new link renamed into place, then reloads: one round trip.
   */
  async swapAndReload(generation: string, previous: string | null, limitSeconds: number): Promise<ReloadOutcome> {
    const argv = ['perl', '-e', SWAP_SCRIPT, this.root, checkGeneration(generation), previous ? checkGeneration(previous) : '', ...this.reloadArgs(limitSeconds)];
    return this.reloaded(await this.executor.run(this.server, argv, { timeoutMs: (limitSeconds + 30) * 1000 }));
  }

  /** Points `current` back (and `last-good`) without a reload: after nginx refused a config, what it runs is already `generation`. */
  async swap(generation: string, previous: string | null): Promise<void> {
    await this.executor.mustRun(this.server, ['perl', '-e', SWAP_SCRIPT, this.root, checkGeneration(generation), previous ? checkGeneration(previous) : '']);
  }

  private reloadArgs(limitSeconds: number): string[] {
    return [RELOAD_SCRIPT, this.pidFile(), String(Math.ceil(limitSeconds))];
  }

  private pidFile(): string {
    const pidFile = this.server.nginxPidFile ?? '/run/nginx.pid';
    if (!/^\/[A-Za-z0-9._\/-]+$/.test(pidFile)) throw new Error(`refused pid file ${JSON.stringify(pidFile)}`);
    return pidFile;
  }

  private reloaded(result: RunResult): ReloadOutcome {
    if (result.exitCode === 0) return 'reloaded';
    if (result.exitCode === 10) return 'not-running';
    if (result.exitCode === 12) return 'stale-pid';
    if (result.exitCode === 11) return 'no-new-workers';
    if (result.exitCode === 13) throw new NginxReloadRefusedError(this.server.hostname, result.stderr.trim().replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').slice(0, 900));
    throw new Error(`reloading nginx on ${this.server.hostname} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
  }

  /** `diff -ruN` of two generations (or of an empty directory and one). */
  async diff(from: string | null, to: string): Promise<string> {
    const empty = posix.join(this.root, TESTS_DIR, 'empty');
    if (!from) await this.executor.mustRun(this.server, ['mkdir', '-p', '--', empty]);
    const result = await this.executor.run(this.server, ['diff', '-ruN', '--exclude=manifest', '--', from ? this.dir(from) : empty, this.dir(to)], { timeoutMs: 120_000 });
    if (result.exitCode > 1) throw new Error(`diff on ${this.server.hostname} failed: ${result.stderr.trim()}`);
    return result.stdout;
  }

  /**
   * Removes every generation but `staging` and those kept (and what crashed
   * runs left staged), and every test config but `staging`'s: safe while
   * `staging` is being staged and tested.
   */
  async prune(staging: string, keep: readonly (string | null)[]): Promise<void> {
    const names = keep.filter((g): g is string => g !== null).map(checkGeneration);
    await this.executor.mustRun(this.server, ['perl', '-e', PRUNE_GENERATIONS_SCRIPT, this.root, checkGeneration(staging), ...names], { timeoutMs: 300_000 });
  }

  /**
   * Which file of an install a generation holds (its own server blocks, or
   * its hostnames for shared ones), or null: whether that nginx serves it.
   */
  async installFileIn(generation: string, fsName: string): Promise<string | null> {
    for (const name of installFiles(fsName)) if (await this.executor.exists(this.server, posix.join(this.dir(generation), name))) return name;
    return null;
  }

  /** One file of a generation (null when it has none). */
  async read(generation: string, name: string): Promise<string | null> {
    if (!FILE_NAME.test(name)) throw new Error(`refused file name ${JSON.stringify(name)}`);
    const result = await this.executor.run(this.server, ['cat', '--', posix.join(this.dir(generation), name)]);
    return result.exitCode === 0 ? result.stdout : null;
  }

  async remove(generation: string): Promise<void> {
    await this.executor.remove(this.server, this.dir(generation));
  }
}

function checkGeneration(name: string): string {
  if (!GENERATION.test(name)) throw new Error(`refused generation name ${JSON.stringify(name)}`);
  return name;
}

function generationOfLink(target: string): string | null {
  const m = /^generations\/(g[0-9a-z]{6,12}-[0-9a-f]{4})$/.exec(target.trim());
  return m ? m[1]! : null;
}
