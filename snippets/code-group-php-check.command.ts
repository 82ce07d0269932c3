import { ModuleRef } from '@nestjs/core';
import { Command, CommandRunner, Option } from 'nest-commander';
import { CodeGroupsService, type PhpCheckReport } from '@app/codebases';
import { out, SnippetError } from './cli-output.js';
import { serverId } from './servers.command.js';

/**
 * Whether the servers that run a code group's PHP (or one server, before it
 * is given the group) satisfy its manifest's PHP requirements
 * (GET /v1/code-groups/:id/php-check). Changes nothing.
 */
@Command({
  name: 'codegroup:php-check',
  arguments: '<group>',
  description: "check a code group's PHP requirements (version, extensions, settings) on the servers that run its PHP; exit 1 when one does not meet them",
})
export class CodeGroupPhpCheckCommand extends CommandRunner {
  private service?: CodeGroupsService;

  constructor(private readonly moduleRef: ModuleRef) {
    super();
  }

  /** The CLI's module does not import CodebasesModule: its service is built here from the global providers. */
  private async groups(): Promise<CodeGroupsService> {
    this.service ??= await this.moduleRef.create(CodeGroupsService);
    return this.service;
  }

  async run([group]: string[], options: { server?: number; json?: boolean }): Promise<void> {
    if (!/^(\d{1,9}|[a-z0-9][a-z0-9_-]{0,63})$/.test(group ?? '')) throw new SnippetError('the code group is its id or its name (GET /v1/code-groups)');
    const report = await (await this.groups()).phpCheck(/^\d+$/.test(group!) ? Number(group) : group!, options.server);
    if (options.json) out(JSON.stringify(report, null, 2));
    else printReport(report);
    if (!report.ok) throw new SnippetError(`code group ${report.group}: the PHP requirements are not met on ${report.servers.filter((s) => !s.ok).map((s) => s.hostname).join(', ')}`);
  }

  @Option({ flags: '--server <id>', description: 'check this server only (it may not hold the group yet)' })
  parseServer(value: string): number {
    return serverId(value);
  }

  @Option({ flags: '--json', description: 'print the report as JSON (as the API answers)' })
  parseJson(): boolean {
    return true;
  }
}

function printReport(report: PhpCheckReport): void {
  out(`code group #${report.groupId} ${report.group}: ${report.required ? 'PHP requirements' : 'no PHP requirements in its manifest'}`);
  for (const s of report.servers) {
    const php = s.binary ? `${s.binary}${s.version ? ` (PHP ${s.version})` : ''}` : 'no PHP';
    out(`${s.ok ? 'ok  ' : 'FAIL'} ${s.hostname} (server ${s.serverId}): ${s.error ? `could not be asked: ${s.error}` : php}`);
    for (const p of s.problems) out(`       problem: ${p}`);
    for (const n of s.notes) out(`       note: ${n}`);
  }
  if (report.servers.length === 0) out('no server runs PHP for this group');
}
