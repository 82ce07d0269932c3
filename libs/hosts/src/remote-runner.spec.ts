import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFields, PATH_SCRIPT } from './path-ops.js';
import { decodeReplies, encodeRequest, RUNNER_BUILTIN, RUNNER_SCRIPT, type RunnerReply, type RunnerRequest } from './remote-runner.js';

/** The runner script in a local perl process, talked to over its stdin/stdout as SSH would. */
class LocalRunner {
  private readonly child: ChildProcessWithoutNullStreams;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiting: ((r: RunnerReply) => void)[] = [];
  readonly exited: Promise<number | null>;

  constructor() {
    this.child = spawn('perl', ['-e', RUNNER_SCRIPT]);
    this.child.stdout.on('data', (chunk: Buffer) => {
      const { replies, rest } = decodeReplies(Buffer.concat([this.buffer, chunk]));
      this.buffer = rest;
      for (const r of replies) this.waiting.shift()!(r);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
  }

  run(request: RunnerRequest): Promise<RunnerReply> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(encodeRequest(request));
    });
  }

  end(): void {
    this.child.stdin.end();
  }
}

describe('remote runner', () => {
  let runner: LocalRunner;
  beforeAll(() => {
    runner = new LocalRunner();
  });
  afterAll(async () => {
    runner.end();
    await runner.exited;
  });

  it('runs argument vectors without a shell and reports exit code, stdout and stderr', async () => {
    const r = await runner.run({ id: 1, timeoutMs: 5_000, argv: ['sh', '-c', 'printf "%s|" "$@"; echo err >&2; exit 3', 'sh', '$(x)', "a'b", ''] });
    expect(r.id).toBe(1);
    expect(r.status).toBe('exit');
    expect(r.exitCode).toBe(3);
    expect(r.stdout.toString()).toBe("$(x)|a'b||");
    expect(r.stderr.toString()).toBe('err\n');
  });

  it('passes binary input and output unchanged, with cwd and environment', async () => {
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 256));
    const r = await runner.run({ id: 2, timeoutMs: 5_000, argv: ['cat'], input: bytes });
    expect(Buffer.compare(r.stdout, bytes)).toBe(0);
    const env = await runner.run({ id: 3, timeoutMs: 5_000, cwd: '/tmp', env: { SHOP: 'a b\nc' }, argv: ['sh', '-c', 'pwd; printf %s "$SHOP"; echo; echo "$LC_ALL"'] });
    expect(env.stdout.toString()).toBe('/tmp\na b\nc\nC\n');
  });

  it('reports a missing program as 127, a bad directory as 126, a signal as 128+n', async () => {
    expect((await runner.run({ id: 4, timeoutMs: 5_000, argv: ['no-such-program-here'] })).exitCode).toBe(127);
    expect((await runner.run({ id: 5, timeoutMs: 5_000, cwd: '/no/such/dir', argv: ['true'] })).exitCode).toBe(126);
    expect((await runner.run({ id: 6, timeoutMs: 5_000, argv: ['sh', '-c', 'kill -TERM $$'] })).exitCode).toBe(128 + 15);
  });

  it('kills the command and what it started at the timeout, and keeps serving', async () => {
    const started = Date.now();
    const r = await runner.run({ id: 7, timeoutMs: 300, argv: ['sh', '-c', 'sleep 30 & sleep 30'] });
    expect(r.status).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect((await runner.run({ id: 8, timeoutMs: 5_000, argv: ['echo', 'next'] })).stdout.toString()).toBe('next\n');
  });

  it('runs the file operations built in (a fork, no new perl, a fast exit) with the results, output and exit codes of the script run alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runner-path-'));
    try {
      mkdirSync(join(dir, 'home/shop'), { recursive: true });
      writeFileSync(join(dir, 'home/shop/a.txt'), Buffer.from([0, 1, 2, 255, 10]));
      // More than a pipe holds: all of it is written before the child's fast exit.
      writeFileSync(join(dir, 'home/shop/big.sql'), Buffer.alloc(700_000, 'insert into t values (1);\n'));
      symlinkSync('/etc', join(dir, 'home/link'));
      const cases: [string, (string | Buffer)[]][] = [
        ['read', [dir, 'home/shop/a.txt']],
        ['read', [dir, 'home/shop/big.sql']],
        ['read', [dir, 'home/shop/missing']],
        ['read', [dir, 'home/link/passwd']],
        ['exists', [dir, 'home/shop/a.txt']],
        ['exists', [dir, 'home/nothing']],
        ['check', [dir, 'home/link']],
        ['mkdirs', ['750', '', dir, 'home/shop/new/deep']],
        ['nosuchop', []],
      ];
      let id = 100;
      for (const [op, fields] of cases) {
        const input = encodeFields(fields);
        const alone = spawnSync('perl', ['-e', PATH_SCRIPT, op], { input });
        const built = await runner.run({ id: id++, timeoutMs: 5_000, argv: [RUNNER_BUILTIN, 'path', op], input });
        expect({ op, exitCode: built.exitCode, stdout: built.stdout.toString('hex'), stderr: built.stderr.toString() }).toEqual({ op, exitCode: alone.status, stdout: alone.stdout.toString('hex'), stderr: alone.stderr.toString() });
      }
      expect(execFileSync('stat', ['-c', '%a', join(dir, 'home/shop/new/deep')]).toString().trim()).toBe('750');
      const unknown = await runner.run({ id: id++, timeoutMs: 5_000, argv: [RUNNER_BUILTIN, 'eval', 'print 1'] });
      expect({ exitCode: unknown.exitCode, stdout: unknown.stdout.toString() }).toEqual({ exitCode: 127, stdout: '' });
      // The runner serves on after them.
      expect((await runner.run({ id: id++, timeoutMs: 5_000, argv: ['echo', 'next'] })).stdout.toString()).toBe('next\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs `perl -e` scripts in the child it forks (the builtin perl) as perl runs them: output, exit codes, die messages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'runner-perl-'));
    try {
      const cases: [string, string, string[], string?][] = [
        ['arguments, shift and stdin', 'use strict; use warnings; my $first = shift; local $/; my $in = <STDIN>; print "$first|@ARGV|$in|$0";', ['a', 'b c', 'd'], 'input\n'],
        ['an explicit exit code', 'print "out"; print STDERR "err"; exit 3;', []],
        ['a die with its own line end', 'die "refused: $ARGV[0]\n";', ['x']],
        ['a die where perl names the line', 'my $x = 1;\ndie "no luck"', []],
        ['a die after a failed call: errno is the exit code', 'open(my $h, "<", "/nonexistent/x") or die "cannot open: $!\n";', []],
        // No lexical or sub of the runner is in the script's scope: $in and reply are its own here.
        ['none of the runner in scope', 'no strict; print defined($in) ? "runner lexical\n" : "clean\n"; print defined(&reply) ? "runner sub\n" : "clean\n";', []],
        ['modules the scripts use', 'use strict; use warnings; use IO::Handle; use File::Path qw(make_path remove_tree); use POSIX qw(floor); make_path("$ARGV[0]/a/b"); remove_tree("$ARGV[0]/a"); print -e "$ARGV[0]/a" ? "left" : "gone", floor(2.5);', [dir]],
        ['a file written and never closed is flushed at the end', 'open(my $fh, ">", "$ARGV[0]/unclosed") or die; print $fh "kept";', [dir]],
        ['exec from the script', 'exec("echo", "replaced", @ARGV) or die "no exec: $!\n";', ['too']],
        ['a warning goes to stderr', 'use warnings; my $x; print "v=" . $x . "\n";', []],
      ];
      let id = 300;
      for (const [what, script, args, input] of cases) {
        const alone = spawnSync('perl', ['-e', script, ...args], { input: input ?? '' });
        const built = await runner.run({ id: id++, timeoutMs: 5_000, argv: [RUNNER_BUILTIN, 'perl', script, ...args], input: input ?? '' });
        expect({ what, exitCode: built.exitCode, stdout: built.stdout.toString(), stderr: built.stderr.toString() }).toEqual({ what, exitCode: alone.status, stdout: alone.stdout.toString(), stderr: alone.stderr.toString() });
      }
      expect(execFileSync('cat', [join(dir, 'unclosed')]).toString()).toBe('kept');
      // A script that does not compile fails as perl's does (255, a syntax error at its line), and the runner serves on.
      const broken = await runner.run({ id: id++, timeoutMs: 5_000, argv: [RUNNER_BUILTIN, 'perl', 'print "a" +;'] });
      expect(broken.exitCode).toBe(255);
      expect(broken.stderr.toString()).toMatch(/^syntax error at -e line 1, /);
      expect((await runner.run({ id: id++, timeoutMs: 5_000, argv: ['echo', 'next'] })).stdout.toString()).toBe('next\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses NUL bytes in arguments before sending anything', () => {
    expect(() => encodeRequest({ id: 9, timeoutMs: 1, argv: ['a\0b'] })).toThrow(/NUL/);
  });

  it('decodes replies split across chunks', () => {
    const reply = Buffer.from([0, 0, 0, 26, 0, 0, 0, 1, 0x37, 0, 0, 0, 4, ...Buffer.from('exit'), 0, 0, 0, 1, 0x30, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(decodeReplies(reply.subarray(0, 10))).toEqual({ replies: [], rest: reply.subarray(0, 10) });
    const { replies, rest } = decodeReplies(reply);
    expect(rest.length).toBe(0);
    expect(replies[0]).toMatchObject({ id: 7, status: 'exit', exitCode: 0 });
  });
});

describe('remote runner becoming a stream', () => {
  it('acknowledges, then is the command on its own stdin and stdout, with the command\'s exit code', async () => {
    const child = spawn('perl', ['-e', RUNNER_SCRIPT]);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    // A normal command first: the runner is reused, then becomes `sh`.
    child.stdin.write(encodeRequest({ id: 1, timeoutMs: 5_000, argv: ['true'] }));
    child.stdin.write(encodeRequest({ id: 2, timeoutMs: 'become', env: { GREETING: 'hi' }, argv: ['sh', '-c', 'printf "%s:" "$GREETING"; cat; exit 7'] }));
    for (let i = 0; i < 100 && decodeReplies(Buffer.concat(chunks)).replies.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    const { replies, rest } = decodeReplies(Buffer.concat(chunks));
    expect(replies.map((r) => [r.id, r.status])).toEqual([
      [1, 'exit'],
      [2, 'became'],
    ]);
    expect(rest.length).toBeLessThanOrEqual('hi:'.length);
    // Its process group, which the engine kills to stop it.
    expect(Number(replies[1]!.stdout.toString())).toBe(Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(child.pid)]).toString().trim()));
    child.stdin.end('streamed bytes');
    expect(await exited).toBe(7);
    // After the two replies, the output is the command's own.
    expect(decodeReplies(Buffer.concat(chunks)).rest.toString()).toBe('hi:streamed bytes');
  });
});
