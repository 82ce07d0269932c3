// Jest test environment that names the test file which leaves something open
// (`JEST_OPEN_HANDLES=1 npm run jest -- ...`, see jest.config.js). Jest's own
// --detectOpenHandles skips handles created outside the test's own stack
// frames: it missed the SSH connection a test left open through ssh2. This
// compares what keeps the process alive (Node counts only referenced handles,
// timers and requests) before and after each file, once the file's own
// afterAll hooks ran. CommonJS: Jest loads test environments untransformed.
const { TestEnvironment } = require('jest-environment-node');

const SETTLE_MS = 2000;

function tally(names) {
  const counts = new Map();
  for (const name of names) counts.set(name, (counts.get(name) ?? 0) + 1);
  return counts;
}

function describeHandle(handle) {
  const kind = handle?.constructor?.name ?? typeof handle;
  if (kind === 'Socket' || kind === 'TLSSocket') {
    return handle.remotePort ? `${kind} ${handle.localAddress}:${handle.localPort} -> ${handle.remoteAddress}:${handle.remotePort}` : `${kind} (not connected, or a pipe)`;
  }
  if (kind === 'Server') return `Server listening on ${JSON.stringify(handle.address())}`;
  if (kind === 'ChildProcess') return `ChildProcess ${handle.pid} ${(handle.spawnargs ?? []).join(' ').slice(0, 200)}`;
  return kind;
}

class OpenHandlesEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.testPath = context.testPath;
  }

  async setup() {
    await super.setup();
    this.handlesBefore = new Set(process._getActiveHandles());
    this.resourcesBefore = tally(process.getActiveResourcesInfo());
  }

  async teardown() {
    // A socket being closed, a child being reaped: give them a moment before naming anything.
    let grown = [];
    for (const deadline = Date.now() + SETTLE_MS; ; ) {
      const now = tally(process.getActiveResourcesInfo());
      grown = [...now].filter(([name, count]) => count > (this.resourcesBefore.get(name) ?? 0)).map(([name, count]) => `${name} +${count - (this.resourcesBefore.get(name) ?? 0)}`);
      if (grown.length === 0 || Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (grown.length > 0) {
      const handles = process._getActiveHandles().filter((handle) => !this.handlesBefore.has(handle)).map(describeHandle);
      process.stderr.write(`\nopen handles: ${this.testPath} left ${grown.join(', ')} open${handles.map((h) => `\n  ${h}`).join('')}\n`);
    }
    await super.teardown();
  }
}

module.exports = OpenHandlesEnvironment;
