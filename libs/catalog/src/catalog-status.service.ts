import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { MIGRATIONS_TABLE } from './catalog-data-source.js';

/** Reachability and migration state of the catalog, for /health and the migrate snippet. */
@Injectable()
export class CatalogStatusService {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  get driver(): string {
    return this.dataSource.options.type;
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /** Names of the migrations the code has and the catalog has not applied. */
  async pendingMigrations(): Promise<string[]> {
    return pendingMigrations(this.dataSource);
  }

  /** Applies pending migrations; returns their names. */
  async migrate(): Promise<string[]> {
    const ran = await this.dataSource.runMigrations({ transaction: 'each' });
    return ran.map((m) => m.name);
  }
}

export async function pendingMigrations(dataSource: DataSource): Promise<string[]> {
  const known = dataSource.migrations.map((m) => m.name ?? m.constructor.name);
  const runner = dataSource.createQueryRunner();
  try {
    if (!(await runner.hasTable(MIGRATIONS_TABLE))) return known;
    const rows: { name: string }[] = await runner.query(
      `SELECT name FROM ${dataSource.driver.escape(MIGRATIONS_TABLE)}`,
    );
    const applied = new Set(rows.map((r) => r.name));
    return known.filter((name) => !applied.has(name));
  } finally {
    await runner.release();
  }
}
