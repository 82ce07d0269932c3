import { InjectDataSource } from '@nestjs/typeorm';
import { Command, CommandRunner, Option } from 'nest-commander';
import { DataSource } from 'typeorm';
import { incidentView, listIncidents } from '@app/site-health';
import { out, SnippetError, table } from './cli-output.js';

@Command({ name: 'incidents:list', description: "site health's incidents, newest first (sites that failed 3 rounds in a row, until they answered again)" })
export class IncidentsListCommand extends CommandRunner {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    super();
  }

  async run(_args: string[], options: { installId?: number; open?: boolean; limit?: number; json?: boolean }): Promise<void> {
    const incidents = (await listIncidents(this.dataSource, options)).map(incidentView);
    if (options.json) {
      out(JSON.stringify(incidents, null, 2));
      return;
    }
    out(
      table(
        ['id', 'install', 'opened', 'closed', 'rounds', 'caches', 'problem'],
        incidents.map((i) => [i.id, i.installId, i.openedAt, i.closedAt ?? 'OPEN', i.failedRounds, i.cachesCleared ? 'emptied' : '-', (i.lastProblem ?? i.problem).slice(0, 100)]),
      ),
    );
  }

  @Option({ flags: '--install-id <id>', description: 'only this install' })
  parseInstall(value: string): number {
    if (!/^\d{1,9}$/.test(value)) throw new SnippetError('--install-id is an install id');
    return Number(value);
  }

  @Option({ flags: '--open', description: 'only open incidents' })
  parseOpen(): boolean {
    return true;
  }

  @Option({ flags: '--limit <n>', description: 'at most this many (default 100)' })
  parseLimit(value: string): number {
    if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 1000) throw new SnippetError('--limit is 1 to 1000');
    return Number(value);
  }

  @Option({ flags: '--json', description: 'print JSON' })
  parseJson(): boolean {
    return true;
  }
}
