import { Command, CommandRunner, Option } from 'nest-commander';
import { AuditLogService, ListAuditQuery } from '@app/audit';
import { validateDto } from '@app/common';
import { out, table } from './cli-output.js';

interface AuditListOptions {
  installId?: string;
  actor?: string;
  action?: string;
  since?: string;
  until?: string;
  limit?: string;
  beforeId?: string;
  json?: boolean;
}

/** GET /v1/audit as a snippet: the same filters, validated by the same DTO. */
@Command({ name: 'audit:list', description: 'the audit log, newest first (--install-id, --actor, --action install.*, --since, --until, --limit, --before-id; --json)' })
export class AuditListCommand extends CommandRunner {
  constructor(private readonly audit: AuditLogService) {
    super();
  }

  async run(_args: string[], options: AuditListOptions): Promise<void> {
    const { json, ...filters } = options;
    const query = await validateDto(ListAuditQuery, Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== undefined)));
    const page = await this.audit.list(query);
    if (json) {
      out(JSON.stringify(page, null, 2));
      return;
    }
    out(
      table(
        ['id', 'at', 'actor', 'via', 'action', 'target', 'details'],
        page.events.map((e) => [e.id, e.at, e.actor, e.via, e.action, e.targetType ? `${e.targetType}:${e.targetId ?? ''}` : null, e.details ? oneLine(JSON.stringify(e.details), 100) : null]),
      ),
    );
    if (page.nextBeforeId !== null) out(`more: --before-id ${page.nextBeforeId}`);
  }

  @Option({ flags: '--install-id <id>', description: 'events whose target is this install' })
  parseInstallId(value: string): string {
    return value;
  }

  @Option({ flags: '--actor <actor>', description: 'exactly this actor (token:<name>, cli:<login>)' })
  parseActor(value: string): string {
    return value;
  }

  @Option({ flags: '--action <action>', description: 'this action, or a prefix ending in * (install.*)' })
  parseAction(value: string): string {
    return value;
  }

  @Option({ flags: '--since <time>', description: 'at or after this time (ISO 8601)' })
  parseSince(value: string): string {
    return value;
  }

  @Option({ flags: '--until <time>', description: 'before this time (ISO 8601)' })
  parseUntil(value: string): string {
    return value;
  }

  @Option({ flags: '--limit <n>', description: 'how many (default 100, at most 1000)' })
  parseLimit(value: string): string {
    return value;
  }

  @Option({ flags: '--before-id <id>', description: 'older than this event id (the "more:" line of the previous page)' })
  parseBeforeId(value: string): string {
    return value;
  }

  @Option({ flags: '--json', description: 'the page as JSON (as GET /v1/audit answers)' })
  parseJson(): boolean {
    return true;
  }
}

function oneLine(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
