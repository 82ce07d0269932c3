import { Inject } from '@nestjs/common';
import { Command, CommandRunner, Option } from 'nest-commander';
import { DataSource, MoreThan, type EntityTarget, type ObjectLiteral } from 'typeorm';
import { AuditEventRepository, Install } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig, type SecretsKeyring } from '@app/config';
import { decryptSecret, encryptSecret, isCurrentSecret, secretKeyIdOf } from '@app/installs';
import { out, SnippetError } from './cli-output.js';
import { cliActor } from './token-create.command.js';

/** Every column holding a secret encrypted with SECRETS_KEY (`encryptSecret`): a new one is added here. */
export const ENCRYPTED_COLUMNS: readonly { entity: EntityTarget<ObjectLiteral>; columns: readonly string[] }[] = [
  { entity: Install, columns: ['dbPasswordEnc', 'secretsEnc'] },
];

interface ColumnReport {
  name: string;
  current: number;
  rotated: number;
  /** Rewritten by the engine between our read and our write (with the current key): left as it is. */
  changed: number;
  failed: { id: number; error: string }[];
  /** How many secrets each key id held before (`v1`: written before key ids). */
  found: Map<string, number>;
}

/**
 * Re-encrypts every stored secret with the current SECRETS_KEY, in batches,
 * each row written only if it still holds what was read (the engine may run
 * meanwhile). Idempotent: a second run finds everything current. Once it
 * reports nothing left, SECRETS_KEY_PREVIOUS can be removed.
 */
export class SecretsRotation {
  constructor(
    private readonly dataSource: DataSource,
    private readonly keyring: SecretsKeyring,
  ) {}

  async run(options: { dryRun: boolean; batchSize: number; progress: (line: string) => void }): Promise<ColumnReport[]> {
    const reports: ColumnReport[] = [];
    for (const { entity, columns } of ENCRYPTED_COLUMNS) {
      const metadata = this.dataSource.getMetadata(entity);
      const byColumn = new Map(
        columns.map((c) => [c, { name: `${metadata.tableName}.${metadata.findColumnWithPropertyName(c)!.databaseName}`, current: 0, rotated: 0, changed: 0, failed: [], found: new Map() } as ColumnReport]),
      );
      let after = 0;
      for (;;) {
        const rows = await this.dataSource.getRepository(entity).find({
          select: Object.fromEntries(['id', ...columns].map((c) => [c, true])) as never,
          where: { id: MoreThan(after) } as never,
          order: { id: 'ASC' } as never,
          take: options.batchSize,
        });
        if (rows.length === 0) break;
        after = Number(rows[rows.length - 1]!.id);
        const writes: { id: number; column: string; from: string; to: string }[] = [];
        for (const row of rows) {
          for (const column of columns) {
            const stored = row[column] as string | null;
            if (stored === null || stored === undefined) continue;
            const report = byColumn.get(column)!;
            const keyId = secretKeyIdOf(stored) ?? 'v1';
            report.found.set(keyId, (report.found.get(keyId) ?? 0) + 1);
            if (isCurrentSecret(this.keyring, stored)) {
              report.current += 1;
              continue;
            }
            try {
              writes.push({ id: Number(row.id), column, from: stored, to: encryptSecret(this.keyring, decryptSecret(this.keyring, stored)) });
            } catch (error) {
              report.failed.push({ id: Number(row.id), error: (error as Error).message });
            }
          }
        }
        if (options.dryRun) {
          for (const w of writes) byColumn.get(w.column)!.rotated += 1;
        } else if (writes.length > 0) {
          await this.dataSource.transaction(async (m) => {
            for (const w of writes) {
              const result = await m.update(entity, { id: w.id, [w.column]: w.from }, { [w.column]: w.to });
              byColumn.get(w.column)![(result.affected ?? 0) === 1 ? 'rotated' : 'changed'] += 1;
            }
          });
        }
        options.progress(`${metadata.tableName}: up to id ${after}, ${writes.length} secret(s) ${options.dryRun ? 'to re-encrypt' : 're-encrypted'} in this batch`);
      }
      reports.push(...byColumn.values());
    }
    return reports;
  }
}

@Command({
  name: 'secrets:rotate',
  description: 're-encrypt every stored secret with the current SECRETS_KEY (after setting SECRETS_KEY_PREVIOUS to the old key); exit 1 if any cannot be decrypted',
})
export class SecretsRotateCommand extends CommandRunner {
  constructor(
    private readonly dataSource: DataSource,
    private readonly audit: AuditEventRepository,
    @Inject(ENGINE_CONFIG) private readonly config: EngineConfig,
  ) {
    super();
  }

  async run(_args: string[], options: { dryRun?: boolean; batchSize?: number }): Promise<void> {
    const keyring = this.config.secretsKey;
    const dryRun = options.dryRun ?? false;
    out(`current key id ${keyring.currentId}; previous key id(s): ${keyring.previousIds.join(', ') || 'none'}${dryRun ? ' (dry run: nothing is written)' : ''}`);
    const reports = await new SecretsRotation(this.dataSource, keyring).run({ dryRun, batchSize: options.batchSize ?? 500, progress: out });
    for (const r of reports) {
      const found = [...r.found].map(([id, n]) => `${id} ×${n}`).join(', ') || 'none';
      out(`${r.name}: ${r.rotated} ${dryRun ? 'to re-encrypt' : 're-encrypted'}, ${r.current} already current, ${r.changed} rewritten meanwhile, ${r.failed.length} failed (found: ${found})`);
      for (const f of r.failed.slice(0, 20)) out(`  id ${f.id}: ${f.error}`);
    }
    const failed = reports.reduce((n, r) => n + r.failed.length, 0);
    const rotated = reports.reduce((n, r) => n + r.rotated, 0);
    if (!dryRun) {
      await this.audit.record({
        actor: cliActor(),
        via: 'cli',
        action: 'secrets.rotate',
        details: { keyId: keyring.currentId, previousKeyIds: keyring.previousIds, rotated, failed, columns: reports.map((r) => ({ name: r.name, rotated: r.rotated, current: r.current, failed: r.failed.length })) },
      });
    }
    if (failed > 0) throw new SnippetError(`${failed} secret(s) could not be decrypted with the configured keys; nothing else is blocked, run again once SECRETS_KEY_PREVIOUS holds their key`);
    const left = reports.reduce((n, r) => n + r.changed, 0);
    if (dryRun) out(`${rotated} secret(s) would be re-encrypted with key ${keyring.currentId}`);
    else if (left > 0) out(`${left} secret(s) were rewritten while this ran: run secrets:rotate again to check them`);
    else out(`every stored secret is under key ${keyring.currentId}: SECRETS_KEY_PREVIOUS can be removed`);
  }

  @Option({ flags: '--dry-run', description: 'count and check what would be re-encrypted, write nothing' })
  parseDryRun(): boolean {
    return true;
  }

  @Option({ flags: '--batch-size <n>', description: 'rows read and written per transaction (default 500)' })
  parseBatchSize(value: string): number {
    if (!/^\d{1,5}$/.test(value) || Number(value) < 1) throw new SnippetError('--batch-size is a number from 1 to 99999');
    return Number(value);
  }
}
