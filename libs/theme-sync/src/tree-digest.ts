import { createHash } from 'node:crypto';

/** One install's home on a server and the manifest paths (relative to it) to fingerprint. */
export interface DigestRequest {
  installId: number;
  home: string;
  paths: readonly string[];
}

/** What one server says of one install's home. */
export interface HomeDigest {
  installId: number;
  /** MD5 of the home's marker file (a regular file in a real directory), or null: no marker there. */
  markerMd5: string | null;
  /** MD5 over the stat data of every entry below the paths (null without a marker: not looked at). */
  digest: string | null;
  /** Paths the sync must leave alone: gone on this server, or reached through a symlink or a non-directory. */
  missing: string[];
  unsafe: string[];
}

/**
 * Fingerprints many homes in ONE process (perl, which every server has for
 * the path operations): for each install, reads its marker (never through a
 * link), then walks each path with lstat only, never following a link (a
 * link is one entry: its target text), and hashes path, mode, owner, group,
 * size, mtime, ctime (sub-second) and link target of every entry, names in
 * sorted order. ctime is in: a file rewritten with its old size and mtime
 * put back (FTP clients do that) still changes it. A path whose components
 * below the home are a link or not a directory is reported as unsafe and
 * not walked. Input: one line per install, `id TAB home TAB path...`;
 * output: `id TAB marker-md5|- TAB digest|- TAB missing,... TAB unsafe,...`.
 */
export const DIGEST_SCRIPT = String.raw`
use strict; use warnings;
use Digest::MD5 (); use Fcntl qw(:mode); use Time::HiRes ();
my $MARKER = shift @ARGV;
sub walk {
  my ($ctx, $abs, $rel) = @_;
  my @st = Time::HiRes::lstat($abs);
  if (!@st) { $ctx->add("gone\0$rel\n"); return }
  my $link = S_ISLNK($st[2]) ? (readlink($abs) // '') : '';
  $ctx->add(join("\0", $rel, $st[2], $st[4], $st[5], $st[7], $st[9], $st[10], $link), "\n");
  return unless S_ISDIR($st[2]);
  my $dh;
  if (!opendir($dh, $abs)) { $ctx->add("unreadable\0$rel\n"); return }
  my @names = sort grep { $_ ne '.' && $_ ne '..' } readdir($dh);
  closedir($dh);
  walk($ctx, "$abs/$_", "$rel/$_") for @names;
}
while (my $line = <STDIN>) {
  chomp $line;
  next if $line eq '';
  my ($id, $home, @paths) = split /\t/, $line;
  my $marker;
  my @hs = lstat($home);
  if (@hs && S_ISDIR($hs[2])) {
    my @ms = lstat("$home/$MARKER");
    if (@ms && S_ISREG($ms[2]) && $ms[7] <= 65536 && open(my $fh, '<', "$home/$MARKER")) {
      local $/; my $c = <$fh>; close $fh;
      $marker = Digest::MD5::md5_hex(defined $c ? $c : '');
    }
  }
  if (!defined $marker) { print join("\t", $id, '-', '-', '', ''), "\n"; next }
  my $ctx = Digest::MD5->new; my (@missing, @unsafe);
  for my $p (@paths) {
    $ctx->add("path\0$p\n");
    my @parts = split m{/}, $p; my $cur = $home; my $state = 'ok';
    for my $i (0 .. $#parts) {
      $cur .= "/$parts[$i]";
      my @s = lstat($cur);
      if (!@s) { $state = 'missing'; last }
      if (S_ISLNK($s[2]) || ($i < $#parts && !S_ISDIR($s[2]))) { $state = 'unsafe'; last }
    }
    if ($state eq 'ok') { walk($ctx, $cur, '.') }
    else { $ctx->add("$state\n"); push @{ $state eq 'missing' ? \@missing : \@unsafe }, $p }
  }
  print join("\t", $id, $marker, $ctx->hexdigest, join(',', @missing), join(',', @unsafe)), "\n";
}
`;

/** The script's input: one line per install (homes and paths are checked server paths and manifest paths: no tab, no newline). */
export function digestInput(requests: readonly DigestRequest[]): string {
  return requests
    .map((r) => {
      for (const field of [r.home, ...r.paths]) if (/[\t\n\r\0]/.test(field)) throw new Error(`refused ${JSON.stringify(field)}: control characters`);
      return [String(r.installId), r.home, ...r.paths].join('\t');
    })
    .map((line) => `${line}\n`)
    .join('');
}

/** Parses the script's output; an install it did not answer for is absent. */
export function parseDigests(output: string): Map<number, HomeDigest> {
  const digests = new Map<number, HomeDigest>();
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const [id, marker, digest, missing = '', unsafe = ''] = line.split('\t');
    const installId = Number(id);
    if (!Number.isInteger(installId) || marker === undefined || digest === undefined) throw new Error(`unexpected digest line ${JSON.stringify(line)}`);
    digests.set(installId, {
      installId,
      markerMd5: marker === '-' ? null : marker,
      digest: digest === '-' ? null : digest,
      missing: missing ? missing.split(',') : [],
      unsafe: unsafe ? unsafe.split(',') : [],
    });
  }
  return digests;
}

/** The MD5 of a marker's content, as the script reports it. */
export function markerMd5(content: string): string {
  return createHash('md5').update(content, 'utf8').digest('hex');
}
