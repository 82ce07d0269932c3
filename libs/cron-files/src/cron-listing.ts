import { createHash } from 'node:crypto';

/** What one server's cron directory holds under the engine's file names (`shop-<fs name>`). */
export interface CronListing {
  /** False: the directory is not there (nothing listed). */
  present: boolean;
  /**
   * The directory itself: machine-id, device and inode. Two inventory rows
   * on one machine can name one directory: it is planned once, for both.
   * Null when the machine has no machine-id (every row then stands alone).
   */
  identity: string | null;
  /** The uid the command ran as: the owner the engine's atomic writes give a file. */
  uid: number;
  entries: Map<string, CronEntry>;
}

export type CronEntry =
  | { name: string; kind: 'file'; mode: number; uid: number; sha256: string | null; firstLine: string }
  | { name: string; kind: 'link' | 'other' };

/**
 * Lists a cron directory in ONE process (perl, which every server has for
 * the path operations): for each entry named like an install's cron file,
 * its type (lstat: a link is reported, never followed), and for a regular
 * file its mode, owner, SHA-256 and first line (opened O_NOFOLLOW; a file
 * over 64 KiB is not one the engine wrote: no digest). Nothing else in the
 * directory is looked at. Output: a header `dir TAB present|absent TAB
 * identity TAB uid`, then one line per entry, `file TAB name TAB mode TAB
 * uid TAB sha256|- TAB first line` or `link|other TAB name`.
 */
export const LISTING_SCRIPT = String.raw`
use strict; use warnings;
use Digest::SHA (); use Fcntl qw(:mode O_RDONLY O_NOFOLLOW);
my ($dir) = @ARGV;
my $mid = '';
if (open(my $m, '<', '/etc/machine-id')) { $mid = <$m> // ''; close $m; $mid =~ s/\s+//g }
my @ds = stat($dir);
if (!@ds || !S_ISDIR($ds[2])) { print join("\t", 'dir', 'absent', '-', $>), "\n"; exit 0 }
print join("\t", 'dir', 'present', $mid eq '' ? '-' : "$mid:$ds[0]:$ds[1]", $>), "\n";
opendir(my $dh, $dir) or die "cannot read $dir: $!\n";
my @names = sort grep { /\Ashop-[a-z0-9]+\z/ } readdir($dh);
closedir($dh);
for my $name (@names) {
  my $path = "$dir/$name";
  my @st = lstat($path) or next;
  if (S_ISLNK($st[2])) { print "link\t$name\n"; next }
  if (!S_ISREG($st[2])) { print "other\t$name\n"; next }
  my ($sha, $first) = ('-', '');
  my $fh;
  if (sysopen($fh, $path, O_RDONLY | O_NOFOLLOW)) {
    my $c = ''; my $n;
    while (($n = sysread($fh, $c, 65537 - length($c), length($c))) && length($c) < 65537) {}
    close $fh;
    $sha = Digest::SHA::sha256_hex($c) if length($c) <= 65536;
    ($first) = $c =~ /\A([^\n]*)/;
    $first = substr($first, 0, 300);
    $first =~ s/[\x00-\x1f\x7f]/?/g;
  }
  print join("\t", 'file', $name, sprintf('%o', $st[2] & 07777), $st[4], $sha, $first), "\n";
}
`;

export function parseListing(output: string): CronListing {
  const lines = output.split('\n').filter((l) => l !== '');
  const [tag, state, identity, uid] = (lines.shift() ?? '').split('\t');
  if (tag !== 'dir' || (state !== 'present' && state !== 'absent') || !/^\d+$/.test(uid ?? '')) throw new Error(`unexpected cron listing header ${JSON.stringify(lines[0] ?? output.slice(0, 200))}`);
  const entries = new Map<string, CronEntry>();
  for (const line of lines) {
    const [kind, name, mode, owner, sha, ...rest] = line.split('\t');
    if (!name) throw new Error(`unexpected cron listing line ${JSON.stringify(line)}`);
    if (kind === 'link' || kind === 'other') entries.set(name, { name, kind });
    else if (kind === 'file' && mode && owner && sha) entries.set(name, { name, kind, mode: parseInt(mode, 8), uid: Number(owner), sha256: sha === '-' ? null : sha, firstLine: rest.join('\t') });
    else throw new Error(`unexpected cron listing line ${JSON.stringify(line)}`);
  }
  return { present: state === 'present', identity: identity === '-' || identity === undefined ? null : identity, uid: Number(uid), entries };
}

/** SHA-256 of a file's text, as the listing reports it. */
export const sha256Of = (content: string): string => createHash('sha256').update(content, 'utf8').digest('hex');
