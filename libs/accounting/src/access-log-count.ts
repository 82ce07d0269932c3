/** Hits and bytes of one host on one (UTC) day. */
export interface HostDayUsage {
  host: string;
  /** YYYY-MM-DD, UTC. */
  day: string;
  hits: number;
  bytes: number;
}

/** What counting a byte range of an access log found. */
export interface LogCount {
  /** Where the first line counted starts, and where the next line to count starts: a piece covers [first, stop). */
  first: number;
  stop: number;
  lines: number;
  malformed: number;
  /** The counter's peak memory on the dispatcher, KiB (0 where /proc is not there). */
  peakKib: number;
  usage: HostDayUsage[];
}

/**
 * Counts bytes [start, end) of an access log in the `shop_host` format
 * (`$host $remote_addr [$time_local] "$request" $status $body_bytes_sent`)
 * where the log is, on the dispatcher: one Perl process (perl-base is on
 * every Debian system, as the path operations already need), reading the
 * file once, keeping a counter per host and hour, printing only the counts.
 * No log line crosses the network and the engine does no per-line work;
 * each dispatcher counts its own log. Arguments: file, from, to, end: it
 * counts the whole lines that start in [from, to) (from moved to the next
 * line's start unless a line starts there) and end by `end`, so a long range
 * splits into pieces counted at once, each line in exactly one; a line not
 * ended by `end` waits for the next pass. Output: `first stop lines
 * malformed peak-memory-KiB` (the first line counted starts at `first`, the
 * next one to count at `stop`), then one line per host and UTC day:
 * `host<TAB>yyyy-mm-dd<TAB>hits<TAB>bytes`. The counter places each hour of
 * `$time_local` and its zone in its UTC day itself (once per hour seen;
 * its unit test compares it with Date's arithmetic), so what it holds, and what comes back, is bounded by hosts
 * and days, not by the hours a long backlog spans.
 */
export const COUNT_SCRIPT = String.raw`
use strict; use warnings;
my ($file, $from, $to, $end) = @ARGV;
open(my $f, '<', $file) or die "cannot open $file: $!
"; binmode $f;
my $pos = $from;
if ($from > 0) {
  # Start at a line's start: the line that straddles $from is the previous range's.
  seek($f, $from - 1, 0) or die "cannot seek $file: $!
";
  my $before; read($f, $before, 1);
  if ($before ne "
") { my $rest = <$f>; $pos += length($rest // ''); }
} else {
  seek($f, 0, 0);
}
my %M = (Jan => 1, Feb => 2, Mar => 3, Apr => 4, May => 5, Jun => 6, Jul => 7, Aug => 8, Sep => 9, Oct => 10, Nov => 11, Dec => 12);
# 'dd/Mon/yyyy:HH+zzzz' to the UTC day of that hour's start ('' when it is not one); days from the civil date.
sub utc_day {
  my ($hz) = @_;
  return '' unless $hz =~ m{^(\d\d)/(\w\w\w)/(\d{4}):(\d\d)([+-])(\d\d)(\d\d)$} && exists $M{$2};
  my ($d, $m, $y, $hour) = ($1, $M{$2}, $3, $4);
  my $offset = ($5 eq '-' ? -1 : 1) * ($6 * 60 + $7);
  $y -= 1 if $m <= 2;
  my $era = int($y / 400);
  my $yoe = $y - $era * 400;
  my $doy = int((153 * ($m > 2 ? $m - 3 : $m + 9) + 2) / 5) + $d - 1;
  my $days = $era * 146097 + $yoe * 365 + int($yoe / 4) - int($yoe / 100) + $doy - 719468;
  my @g = gmtime($days * 86400 + $hour * 3600 - $offset * 60);
  return sprintf('%04d-%02d-%02d', $g[5] + 1900, $g[4] + 1, $g[3]);
}
my ($first, $lines, $bad, %hits, %bytes, %day) = ($pos, 0, 0);
while ($pos < $to && defined(my $l = <$f>)) {
  my $next = $pos + length($l);
  last if $next > $end || substr($l, -1) ne "
";
  $pos = $next; $lines++;
  my $h = index($l, ' ');
  my $o = $h > 0 ? index($l, '[', $h) : -1;
  my $s = rindex($l, ' ');
  my $b = substr($l, $s + 1, -1);
  if ($o < 0 || $s < $o + 28 || substr($l, $o + 27, 1) ne ']' || $b eq '' || $b =~ tr/0-9//c || length($b) > 15) { $bad++; next; }
  my $hz = substr($l, $o + 1, 14) . substr($l, $o + 22, 5);
  my $d = $day{$hz} //= utc_day($hz);
  if ($d eq '') { $bad++; next; }
  my $k = substr($l, 0, $h) . "	" . $d;
  $hits{$k}++; $bytes{$k} += $b;
}
my $hwm = 0;
if (open(my $st, '<', '/proc/self/status')) { while (<$st>) { $hwm = $1 if /^VmHWM:\s+(\d+)/ } }
print join(' ', $first, $pos, $lines, $bad, $hwm), "
";
print "$_	$hits{$_}	$bytes{$_}
" for keys %hits;
`;

/** The script's output to counts per host and UTC day; a line of it that is not one is counted malformed. */
export function parseCount(stdout: string): LogCount {
  const lines = stdout.split('\n');
  const head = /^(\d+) (\d+) (\d+) (\d+) (\d+)$/.exec(lines[0] ?? '');
  if (!head) throw new Error(`unexpected output of the log counter: ${JSON.stringify((lines[0] ?? '').slice(0, 200))}`);
  const count: LogCount = { first: Number(head[1]), stop: Number(head[2]), lines: Number(head[3]), malformed: Number(head[4]), peakKib: Number(head[5]), usage: [] };
  const byKey = new Map<string, HostDayUsage>();
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const [host, day, hits, bytes] = line.split('\t');
    if (!host || !day || !/^\d{4}-\d\d-\d\d$/.test(day) || !/^\d+$/.test(hits ?? '') || !/^\d+$/.test(bytes ?? '')) {
      count.malformed += Number(hits) || 0;
      continue;
    }
    const key = `${host}\t${day}`;
    const usage = byKey.get(key) ?? { host, day, hits: 0, bytes: 0 };
    usage.hits += Number(hits);
    usage.bytes += Number(bytes);
    byKey.set(key, usage);
  }
  count.usage = [...byKey.values()];
  return count;
}

/** Adds pieces' counts of one file (each host and day summed). */
export function mergeCounts(pieces: readonly LogCount[]): LogCount {
  const byKey = new Map<string, HostDayUsage>();
  for (const piece of pieces) {
    for (const u of piece.usage) {
      const key = `${u.host}\t${u.day}`;
      const sum = byKey.get(key) ?? { host: u.host, day: u.day, hits: 0, bytes: 0 };
      sum.hits += u.hits;
      sum.bytes += u.bytes;
      byKey.set(key, sum);
    }
  }
  return {
    first: pieces[0]?.first ?? 0,
    stop: pieces.at(-1)?.stop ?? 0,
    lines: pieces.reduce((n, p) => n + p.lines, 0),
    malformed: pieces.reduce((n, p) => n + p.malformed, 0),
    peakKib: Math.max(0, ...pieces.map((p) => p.peakKib)),
    usage: [...byKey.values()],
  };
}
