import { appendFileSync, existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import type { IpRecord } from './ip-manager.js';

/**
 * The node's record of what ip-manager did, one JSON line per IP action,
 * kept until the catalog has it. Appends are single small writes (atomic with
 * O_APPEND), so concurrent notify runs of two groups never interleave a line.
 */
export class IpJournal {
  constructor(readonly path: string) {}

  append(records: readonly IpRecord[]): void {
    if (records.length === 0) return;
    appendFileSync(this.path, records.map((r) => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 });
  }

  /**
   * Hands the pending records to `record`; they leave the journal only when it
   * resolves. The journal is renamed first, so records appended meanwhile wait
   * for the next flush instead of being lost or recorded twice.
   */
  async flush(record: (records: IpRecord[]) => Promise<void>): Promise<number> {
    if (!existsSync(this.path)) return 0;
    const taken = `${this.path}.flushing-${process.pid}-${Date.now()}`;
    try {
      renameSync(this.path, taken);
    } catch {
      return 0;
    }
    const records = readFileSync(taken, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as IpRecord];
        } catch {
          return [];
        }
      });
    try {
      await record(records);
      rmSync(taken, { force: true });
      return records.length;
    } catch (error) {
      // Back in the journal (after anything appended meanwhile): the next run, or the engine, records them.
      appendFileSync(this.path, readFileSync(taken));
      rmSync(taken, { force: true });
      throw error;
    }
  }
}
