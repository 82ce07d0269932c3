import { readFile, stat } from 'node:fs/promises';
import { Command, CommandRunner, Option } from 'nest-commander';
import { DomainError, validateDto } from '@app/common';
import { InstallRewritesService, SetRewritesDto } from '@app/installs';
import { out, SnippetError } from './cli-output.js';
import { cliActor } from './token-create.command.js';

interface RewritesOptions {
  id?: number;
  file?: string;
  dryRun?: boolean;
}

/** A rules file is a few kilobytes; anything this big is the wrong file. */
const MAX_FILE_BYTES = 1024 * 1024;

/**
 * The seed's "Custom rewrite rules" (PUT /v1/installs/:id/rewrites): the
 * install's rules replaced by the file's (a JSON array of rules, or
 * `{ "rules": [...] }`), checked by the same DTO and renderer as the API.
 * --dry-run prints each dispatcher's vhost diff and changes nothing.
 */
@Command({
  name: 'install:rewrites',
  description: "replace an install's rewrite rules from a JSON file (--id N --file rules.json): checked, stored, audited, nginx rebuilt; --dry-run shows the vhost diff per dispatcher",
})
export class InstallRewritesCommand extends CommandRunner {
  constructor(private readonly rewrites: InstallRewritesService) {
    super();
  }

  async run(_args: string[], options: RewritesOptions): Promise<void> {
    if (options.id === undefined) throw new SnippetError('--id <install id> is required');
    if (options.file === undefined) throw new SnippetError('--file <rules.json> is required (a JSON array of rules, or {"rules": [...]})');
    const dto = await validateDto(SetRewritesDto, { rules: await readRules(options.file) });
    try {
      if (options.dryRun) {
        const plan = await this.rewrites.plan(options.id, dto.rules);
        out(`dry run: install ${plan.installId} has ${plan.before.length} rule(s), would have ${plan.after.length}${plan.changed ? '' : ' (the same rules)'}; nothing changed`);
        if (plan.servers.length === 0) out('no dispatcher serves the install now (not building or live): no vhost to compare');
        for (const server of plan.servers) {
          if (server.diff === '') out(`${server.server}: ${server.file} unchanged`);
          else process.stdout.write(server.diff);
        }
        return;
      }
      const { rules, changed } = await this.rewrites.set(options.id, dto.rules, { actor: cliActor(), via: 'cli' });
      out(changed ? `install ${options.id}: ${rules.length} rule(s) stored, audited; nginx rebuild requested on its dispatchers` : `install ${options.id}: the same ${rules.length} rule(s) were stored already; nothing changed`);
    } catch (e) {
      if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
      throw e;
    }
  }

  @Option({ flags: '--id <installId>', description: 'the install' })
  parseId(value: string): number {
    if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new SnippetError('--id is an install id (a number)');
    return Number(value);
  }

  @Option({ flags: '--file <path>', description: 'JSON: an array of { match: exact|prefix, from, to, code: 301|302 }, or { "rules": [...] }; [] removes them all' })
  parseFile(value: string): string {
    return value;
  }

  @Option({ flags: '--dry-run', description: "show each dispatcher's vhost diff; store, audit and rebuild nothing" })
  parseDryRun(): boolean {
    return true;
  }
}

async function readRules(path: string): Promise<unknown> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new SnippetError(`--file ${path} is not a file`);
    if (info.size > MAX_FILE_BYTES) throw new SnippetError(`--file ${path} is ${info.size} bytes: a rules file is at most ${MAX_FILE_BYTES}`);
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (error instanceof SnippetError) throw error;
    throw new SnippetError(`cannot read --file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new SnippetError(`--file ${path} is not JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(parsed)) return parsed;
  if (parsed !== null && typeof parsed === 'object' && Object.keys(parsed).length === 1 && 'rules' in parsed) return (parsed as { rules: unknown }).rules;
  throw new SnippetError(`--file ${path} must hold a JSON array of rules, or {"rules": [...]}`);
}
