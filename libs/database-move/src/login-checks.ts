import { Injectable } from '@nestjs/common';
import mysql from 'mysql2/promise';
import type { Server } from '@app/catalog';
import { ServerAccess } from '@app/hosts';
import { TenantDatabases, type TenantLogin } from '@app/databases';
import { mapLimited } from './install-homes.js';
import { ServerBatches } from './server-batches.js';

/**
 * Run on the database server: for each login (user, password, database) on
 * stdin, the server's client connects as it, to its database, the way
 * runStatements does (no option file, the password in the client's
 * environment only), and runs `SELECT 1`; a few at once. Out: per login a
 * line, its exit code and its stderr in hex. Perl of perl-base only.
 */
const CHECK_LOGINS = String.raw`
use strict;
binmode STDIN; binmode STDOUT;
my @F = do { local $/; my $raw = <STDIN>; defined $raw ? unpack('(N/a*)*', $raw) : () };
my $client = shift @F;
my @connect = splice(@F, 0, shift @F);
my @logins;
push @logins, [splice(@F, 0, 3)] while @F;
my (@out, %running);
my $next = 0;
while ($next < @logins || %running) {
  while ($next < @logins && keys(%running) < 16) {
    my ($user, $password, $database) = @{ $logins[$next] };
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
      close $r;
      open(STDIN, '<', '/dev/null') && open(STDOUT, '>', '/dev/null') && open(STDERR, '>&', $w) or exit 125;
      $ENV{MYSQL_PWD} = $password;
      { no warnings; exec { $client } $client, '--no-defaults', '--batch', '--skip-column-names', "--user=$user", @connect, "--database=$database", '-e', 'SELECT 1'; }
      print STDERR "cannot run $client: $!\n";
      exit 127;
    }
    close $w;
    $running{$pid} = [$next++, $r];
  }
  my $pid = waitpid(-1, 0);
  last if $pid <= 0;
  my $status = $?;
  my ($i, $r) = @{ delete $running{$pid} };
  my $err = do { local $/; <$r> };
  close $r;
  $out[$i] = [($status & 127) ? 128 + ($status & 127) : $status >> 8, defined $err ? $err : ''];
}
print "$_->[0]\t", unpack('H*', $_->[1]), "\n" for @out;
`;

/** Never aborted: a batch serves many sagas, and one of them stopping must not kill the others' command. */
const NEVER = new AbortController().signal;

interface LoginCheck {
  database: string;
  login: TenantLogin;
}

const IDENTIFIER = /^[A-Za-z0-9_$]{1,64}$/;

/** Logins checked at once from the engine (a database server on the engine's own host). */
const CONNECTIONS_AT_ONCE = 16;

/**
 * Whether installs' own logins use their databases on a server, as their
 * shops will: each login really connects to its database and runs
 * `SELECT 1`, from the database server's host, as runStatements' client
 * does. The checks of the installs whose sagas reach their `check` step
 * within a few ms go together: to a server over SSH as one command
 * (CHECK_LOGINS: its client, a few at once); to a server on the engine's
 * own host (`local`) as connections from the engine itself, a few at once,
 * to the same address (the same account answers; no client to start per
 * login).
 */
@Injectable()
export class LoginChecks {
  private readonly batches = new ServerBatches<LoginCheck>((server, items) => this.checkMany(server, items), { delayMs: 5, maxItems: 64 });

  constructor(
    private readonly tenants: TenantDatabases,
    private readonly access: ServerAccess,
  ) {}

  /** Resolves when the login can use the database; rejects with the client's message (the password masked) otherwise. */
  async check(server: Server, database: string, login: TenantLogin): Promise<void> {
    if (!IDENTIFIER.test(database) || !IDENTIFIER.test(login.user)) throw new Error(`refused database or user name ${JSON.stringify(database)} / ${JSON.stringify(login.user)}`);
    if (this.tenants.sqlite(server)) {
      await this.tenants.runStatements(server, database, login, 'database-move-check', [{ text: 'SELECT 1', line: 1 }]);
      return;
    }
    await this.batches.add(server, { database, login });
  }

  private async checkMany(server: Server, items: readonly LoginCheck[]): Promise<(Error | null)[]> {
    const connection = await this.tenants.connection(server);
    if (server.transport === 'local' && (connection.socket || connection.host)) {
      const at = connection.socket ? { socketPath: connection.socket } : { host: connection.host!, port: connection.port ?? 3306 };
      return mapLimited(items, CONNECTIONS_AT_ONCE, async ({ database, login }) => {
        try {
          const c = await mysql.createConnection({ ...at, user: login.user, password: login.password, database, connectTimeout: 10_000 });
          try {
            await c.query('SELECT 1');
          } finally {
            await c.end().catch(() => undefined);
          }
          return null;
        } catch (e) {
          return new Error(mask(e instanceof Error ? e.message : String(e), items).split('\n')[0]!);
        }
      });
    }
    const connect = connection.socket ? [`--socket=${connection.socket}`] : [...(connection.host ? [`--host=${connection.host}`] : []), ...(connection.port ? [`--port=${connection.port}`] : [])];
    const fields = [connection.client, String(connect.length), ...connect, ...items.flatMap((i) => [i.login.user, i.login.password, i.database])];
    const result = await this.access.executorFor(server).run(server, ['perl', '-e', CHECK_LOGINS], { input: encodeFields(fields), timeoutMs: 120_000, signal: NEVER });
    if (result.exitCode !== 0) throw new Error(`${server.hostname}: the login checks did not run (exit ${result.exitCode}): ${mask(result.stderr, items).slice(0, 500)}`);
    const lines = result.stdout.split('\n');
    return items.map((item, n) => {
      const [code, hex] = (lines[n] ?? '').split('\t');
      if (!code) return new Error(`${server.hostname}: no answer for ${item.login.user}`);
      if (code === '0') return null;
      const message = mask(Buffer.from(hex ?? '', 'hex').toString('utf8'), [item]).trim().split('\n')[0]!;
      return new Error(message || `the client exited ${code}`);
    });
  }
}

/** A client's message never shows a password (of any login in the batch). */
function mask(text: string, items: readonly LoginCheck[]): string {
  let out = text;
  for (const { login } of items) if (login.password) out = out.split(login.password).join('***');
  return out;
}

function encodeFields(values: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of values) {
    const bytes = Buffer.from(value);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

