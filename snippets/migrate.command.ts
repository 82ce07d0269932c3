import { Command, CommandRunner, Option } from 'nest-commander';
import { CatalogStatusService } from '@app/catalog';
import { out } from './cli-output.js';

/** Applies the catalog's pending migrations (the engine also does at start, per MIGRATIONS_RUN). */
@Command({ name: 'migrate', description: 'apply pending catalog migrations (--dry-run lists them)' })
export class MigrateCommand extends CommandRunner {
  constructor(private readonly catalog: CatalogStatusService) {
    super();
  }

  async run(_args: string[], options: { dryRun?: boolean }): Promise<void> {
    const pending = await this.catalog.pendingMigrations();
    if (pending.length === 0) {
      out(`catalog (${this.catalog.driver}) is up to date`);
      return;
    }
    if (options.dryRun) {
      out(`${pending.length} pending migration(s) on ${this.catalog.driver}:`);
      pending.forEach((name) => out(`  ${name}`));
      return;
    }
    const ran = await this.catalog.migrate();
    ran.forEach((name) => out(`applied ${name}`));
    out(`catalog (${this.catalog.driver}) is up to date`);
  }

  @Option({ flags: '--dry-run', description: 'list pending migrations without applying them' })
  parseDryRun(): boolean {
    return true;
  }
}
