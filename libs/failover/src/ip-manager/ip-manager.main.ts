import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ConfigEnv } from '@app/config';
import { withFileLock } from './file-lock.js';
import { IpManager, VRRP_EVENTS, type VrrpEvent } from './ip-manager.js';
import { IpJournal } from './journal.js';
import { LinuxNetwork } from './linux-network.adapter.js';
import { parseNodeState } from './node-state.js';

/**
 * keepalived's notify script: `ip-manager --state <file> <group> <MASTER|BACKUP|FAULT|STOP>`.
 * Started without Nest and without the catalog on purpose: it must move the
 * IPs when the catalog database is unreachable. It acts from the state file
 * the engine keeps current, journals what it did beside it, then records the
 * journal (this run's and any earlier one's) to the catalog when it can; the
 * engine also collects a journal left behind when it applies the config.
 * Exit 0 when every IP was acted on (taken, left to a live holder, released),
 * 1 when one failed after its retries (keepalived logs it).
 */
const log = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`);

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { state: { type: 'string' }, 'no-record': { type: 'boolean' } }, allowPositionals: true });
  const [group, eventText] = positionals;
  const event = eventText?.toUpperCase() as VrrpEvent;
  if (!values.state || !group || !VRRP_EVENTS.includes(event)) {
    process.stderr.write('usage: ip-manager --state <file> <group> <MASTER|BACKUP|FAULT|STOP>\n');
    return 2;
  }
  const state = parseNodeState(readFileSync(values.state, 'utf8'));
  const journal = new IpJournal(join(dirname(values.state), 'ip-manager.journal'));
  // One run acts at a time on a node, and journals before the next acts: the journal's order is the order of the actions.
  const records = (await withFileLock(
    join(dirname(values.state), 'ip-manager.lock'),
    ACT_LOCK_WAIT_MS,
    async () => {
      const done = await new IpManager(new LinuxNetwork(state.interface), { log }).handle(state, group, event);
      journal.append(done);
      return done;
    },
    { orRunAnyway: true, onTimeout: () => log({ msg: `ip-manager ${event} ${group}: another run held the node's lock for ${ACT_LOCK_WAIT_MS / 1000} s; acting anyway` }) },
  ))!;
  if (!values['no-record']) await recordJournal(journal);
  return records.some((r) => r.action === 'failed') ? 1 : 0;
}

/** Recording is retried this many times, 1, 2, 4 then 8 s apart: a STOP run is the last run until keepalived starts again. */
const RECORD_ATTEMPTS = 5;
/** How long a run waits for the previous run's actions (a takeover's probes take about 2 s) or its recording. */
const ACT_LOCK_WAIT_MS = 30_000;
const FLUSH_LOCK_WAIT_MS = 30_000;

async function recordJournal(journal: IpJournal): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      // Loaded after the IPs moved: TypeORM and the entities take seconds to load on a busy node, the takeover must not wait for them.
      await import('reflect-metadata');
      const [{ createCatalogDataSource }, { loadConfig }, { recordIpActions }] = await Promise.all([import('@app/catalog'), import('@app/config'), import('./holder-recorder.js')]);
      // Only the catalog is read from the configuration; a throwaway key keeps loadConfig from generating a key file on the node.
      const env = { ...process.env, SECRETS_KEY: process.env.SECRETS_KEY ?? randomBytes(32).toString('hex') } as ConfigEnv;
      const ds = await createCatalogDataSource(loadConfig(env).catalog);
      await ds.initialize();
      try {
        // One flush at a time on a node: a later run's records never reach the catalog before an earlier run's.
        const n = await withFileLock(join(dirname(journal.path), 'ip-manager.flush.lock'), FLUSH_LOCK_WAIT_MS, () => journal.flush((records) => recordIpActions(ds, records)), { orRunAnyway: false });
        if (n === null) throw new Error(`another run held the journal for ${FLUSH_LOCK_WAIT_MS / 1000} s`);
        log({ msg: `ip-manager recorded ${n} action(s) to the catalog` });
        return;
      } finally {
        await ds.destroy();
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (attempt >= RECORD_ATTEMPTS) {
        log({ msg: 'ip-manager could not record to the catalog: kept in the journal', journal: journal.path, attempts: attempt, error: message });
        return;
      }
      log({ msg: `ip-manager could not record to the catalog (attempt ${attempt}), retrying`, error: message });
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** (attempt - 1)));
    }
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  log({ msg: 'ip-manager failed', error: error instanceof Error ? error.message : String(error) });
  return 1;
});
