import { isIP } from 'node:net';
import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Server, SharedCodeGroup } from '@app/catalog';
import { checkServerPhp, parseManifest } from '@app/codebases';
import { ServerAccess, ServerCheckService, type CheckItem, type StreamingCommand } from '@app/hosts';
import { POOL_PORT_FIRST, POOL_PORT_LAST } from '@app/webserver';

/**
 * Listens on the handler's private IP, on a free port of the pool range,
 * for `count` connections or `secs` seconds: prints `port N`, then
 * `from <peer address>` per connection, answering each `ok`. Its values
 * arrive as argv; nothing is interpolated.
 */
const LISTENER = `use strict; use IO::Socket::INET;
my ($ip, $first, $last, $count, $secs) = @ARGV;
my ($s, $port);
for (1 .. 64) {
  $port = $first + int(rand($last - $first + 1));
  $s = IO::Socket::INET->new(LocalAddr => $ip, LocalPort => $port, Listen => 16, Proto => 'tcp');
  last if $s;
}
die "cannot listen on $ip: $!\\n" unless $s;
$| = 1;
print "port $port\\n";
local $SIG{ALRM} = sub { exit 0 };
alarm $secs;
for (1 .. $count) {
  my $c = $s->accept or last;
  print "from ", $c->peerhost, "\\n";
  print $c "ok\\n";
  close $c;
}
exit 0;
`;

/** Connects from the dispatcher's private IP (the source bound to it) to the listener; exit 0 when it answered. */
const CLIENT = `use strict; use IO::Socket::INET;
my ($src, $dst, $port) = @ARGV;
my $c = IO::Socket::INET->new(PeerAddr => $dst, PeerPort => $port, LocalAddr => $src, Proto => 'tcp', Timeout => 5);
unless ($c) { print "no connection: ", ($@ || $!), "\\n"; exit 2; }
my $line = <$c>;
exit(defined $line && $line eq "ok\\n" ? 0 : 3);
`;

const LISTEN_SECS = 30;
const FIRST_LINE_MS = 15_000;

/**
 * A handler's part of `POST /v1/servers/:id/check` (registered with the
 * inventory's check): the PHP requirements of every ready code group
 * (version, extensions, settings a pool cannot set), and, for a handler
 * that is not itself a dispatcher, that each active dispatcher reaches its
 * private IP from its own private IP (what the pools' allowed clients
 * admit) on a port of the pool range.
 */
@Injectable()
export class CloudServerCheck implements OnModuleInit {
  constructor(
    private readonly dataSource: DataSource,
    private readonly access: ServerAccess,
    private readonly checks: ServerCheckService,
  ) {}

  onModuleInit(): void {
    this.checks.addContributor('php handler', (server) => this.check(server));
  }

  async check(server: Server): Promise<CheckItem[]> {
    if (!server.roles.includes('cloud') && !server.roles.includes('handler')) return [];
    const items = await this.phpItems(server);
    if (!server.roles.includes('dispatcher')) items.push(...(await this.reachability(server)));
    return items;
  }

  private async phpItems(server: Server): Promise<CheckItem[]> {
    const groups = await this.dataSource.getRepository(SharedCodeGroup).find({ where: { state: 'ready' }, order: { id: 'ASC' } });
    const items: CheckItem[] = [];
    for (const group of groups) {
      const manifest = group.manifest ? await parseManifest(group.manifest) : null;
      if (!manifest?.php) continue;
      const c = await checkServerPhp(this.access.executorFor(server), server, manifest.php);
      const what = c.binary ? `${c.binary}${c.version ? ` (PHP ${c.version})` : ''}` : 'no PHP';
      items.push({
        item: `php for code group ${group.name}`,
        ok: c.ok,
        detail: c.error ? `could not be asked: ${c.error}` : c.ok ? `${what} meets the manifest` : `${what}: ${c.problems.join('; ')}`,
      });
    }
    if (items.length === 0) items.push({ item: 'php for code groups', ok: true, detail: 'no ready code group states PHP requirements' });
    return items;
  }

  private async reachability(server: Server): Promise<CheckItem[]> {
    const dispatchers = (await this.dataSource.getRepository(Server).find({ where: { state: 'active' }, order: { id: 'ASC' } })).filter((s) => s.roles.includes('dispatcher') && s.id !== server.id);
    if (dispatchers.length === 0) return [{ item: 'reachable from dispatchers', ok: true, detail: 'no active dispatcher in the inventory' }];
    const ip = server.privateIp;
    if (!ip || isIP(ip) === 0) return [{ item: 'reachable from dispatchers', ok: false, detail: `${server.hostname} has no private IP: the dispatchers reach its pools there` }];
    const items: CheckItem[] = [];
    let listener: StreamingCommand;
    try {
      listener = await this.access
        .executorFor(server)
        .stream(server, ['perl', '-e', LISTENER, ip, String(POOL_PORT_FIRST), String(POOL_PORT_LAST), String(dispatchers.length), String(LISTEN_SECS)]);
    } catch (error) {
      return [{ item: 'reachable from dispatchers', ok: false, detail: `cannot listen on ${ip}: ${message(error)}` }];
    }
    const output = collect(listener);
    try {
      const first = await output.firstLine(FIRST_LINE_MS);
      const port = /^port (\d+)$/.exec(first ?? '')?.[1];
      if (!port) {
        listener.kill();
        const { stderr } = await listener.done;
        return [{ item: 'reachable from dispatchers', ok: false, detail: `cannot listen on ${ip}: ${stderr.trim() || first || 'no answer'}` }];
      }
      for (const dispatcher of dispatchers) {
        const name = `reachable from ${dispatcher.hostname}`;
        const source = dispatcher.privateIp;
        if (!source || isIP(source) === 0) {
          items.push({ item: name, ok: false, detail: `${dispatcher.hostname} has no private IP to connect from` });
          continue;
        }
        try {
          const r = await this.access.executorFor(dispatcher).run(dispatcher, ['perl', '-e', CLIENT, source, ip, port], { timeoutMs: 15_000 });
          items.push({ item: name, ok: r.exitCode === 0, detail: r.exitCode === 0 ? `${source} → ${ip}:${port} answered` : `${source} → ${ip}:${port}: ${(r.stdout + r.stderr).trim() || `exit ${r.exitCode}`}` });
        } catch (error) {
          items.push({ item: name, ok: false, detail: `could not run the probe on ${dispatcher.hostname}: ${message(error)}` });
        }
      }
    } finally {
      listener.stdin.end();
      listener.kill();
      await listener.done;
    }
    // The listener saw each connection's source: one that arrived from another address would not pass allowed_clients.
    const seen = output.lines().filter((l) => l.startsWith('from ')).map((l) => l.slice(5));
    for (const item of items) {
      const dispatcher = dispatchers.find((d) => item.item === `reachable from ${d.hostname}`)!;
      if (item.ok && !seen.includes(dispatcher.privateIp!)) {
        item.ok = false;
        item.detail = `${item.detail}, but the connection arrived from ${seen.join(', ') || 'nowhere'}, not ${dispatcher.privateIp}`;
      }
    }
    return items;
  }
}

function collect(command: StreamingCommand): { firstLine(timeoutMs: number): Promise<string | null>; lines(): string[] } {
  let text = '';
  let ended = false;
  const waiters: (() => void)[] = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  command.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    wake();
  });
  command.stdout.on('end', () => {
    ended = true;
    wake();
  });
  return {
    async firstLine(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!text.includes('\n') && !ended && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return text.includes('\n') ? text.slice(0, text.indexOf('\n')) : null;
    },
    lines: () => text.split('\n').filter(Boolean),
  };
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));
