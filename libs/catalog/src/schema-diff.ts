import type { DataSource } from 'typeorm';

export interface SchemaDiff {
  up: string[];
  down: string[];
}

/**
 * What the database lacks to match the entities, as TypeORM's migration
 * generator sees it. Empty after all migrations ran: that is the drift check.
 */
export async function schemaDiff(dataSource: DataSource): Promise<SchemaDiff> {
  const log = await dataSource.driver.createSchemaBuilder().log();
  return {
    up: log.upQueries.map((q) => q.query),
    down: log.downQueries.map((q) => q.query).reverse(),
  };
}

/** Source of a migration class replaying `diff` (the migration:generate snippet writes it). */
export function renderMigration(className: string, timestamp: number, diff: SchemaDiff): string {
  const lines = (queries: string[]) =>
    queries.map((q) => `    await queryRunner.query(${JSON.stringify(q)});`).join('\n');
  return `import type { MigrationInterface, QueryRunner } from 'typeorm';

export class ${className}${timestamp} implements MigrationInterface {
  name = '${className}${timestamp}';

  async up(queryRunner: QueryRunner): Promise<void> {
${lines(diff.up)}
  }

  async down(queryRunner: QueryRunner): Promise<void> {
${lines(diff.down)}
  }
}
`;
}
