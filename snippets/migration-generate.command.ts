import { resolve } from 'node:path';
import { InjectDataSource } from '@nestjs/typeorm';
import { Command, CommandRunner, Option } from 'nest-commander';
import type { DataSource } from 'typeorm';
import { CatalogStatusService, generateMigration } from '@app/catalog';
import { out, SnippetError } from './cli-output.js';

/**
 * Developer tool: writes the migration that brings the catalog at CATALOG_URL
 * up to the entities. Run it once with a MySQL/MariaDB URL and once with a
 * SQLite one, each fully migrated first.
 */
@Command({
  name: 'migration:generate',
  description: 'write a migration for the schema changes of the entities (developers)',
})
export class MigrationGenerateCommand extends CommandRunner {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly catalog: CatalogStatusService,
  ) {
    super();
  }

  async run(_args: string[], options: { name?: string; dir?: string }): Promise<void> {
    if (!options.name) throw new SnippetError('give the migration a --name, e.g. --name AddPinRules');
    const pending = await this.catalog.pendingMigrations();
    if (pending.length > 0) throw new SnippetError(`run migrate first: ${pending.join(', ')} not applied`);
    const written = await generateMigration(this.dataSource, options.name, resolve(options.dir ?? 'migrations'));
    out(written ? `wrote ${written.file} (${written.statements} statements)` : 'no schema change to migrate');
  }

  @Option({ flags: '--name <Name>', description: 'PascalCase name of the migration' })
  parseName(value: string): string {
    return value;
  }

  @Option({ flags: '--dir <path>', description: 'migrations root (default ./migrations)' })
  parseDir(value: string): string {
    return value;
  }
}
