import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { Command, CommandRunner } from 'nest-commander';
import type { SharedCodeGroup } from '@app/catalog';
import { CodeGroupsService } from '@app/codebases';
import { out, SnippetError } from './cli-output.js';
import { cliActor } from './token-create.command.js';

/** `<id|name>` of a code group, as the snippets take it. */
function groupArg(text: string | undefined): number | string {
  if (!/^(\d{1,9}|[a-z0-9][a-z0-9_-]{0,63})$/.test(text ?? '')) throw new SnippetError('the code group is its id or its name (GET /v1/code-groups)');
  return /^\d+$/.test(text!) ? Number(text) : text!;
}

/** Locks or unlocks a group (PATCH /v1/code-groups/:id {locked}); shared by both snippets. */
@Injectable()
abstract class CodeGroupLockRunner extends CommandRunner {
  private service?: CodeGroupsService;
  protected abstract readonly locked: boolean;

  constructor(private readonly moduleRef: ModuleRef) {
    super();
  }

  /** The CLI's module does not import CodebasesModule: its service is built here from the global providers. */
  private async groups(): Promise<CodeGroupsService> {
    this.service ??= await this.moduleRef.create(CodeGroupsService);
    return this.service;
  }

  async run([group]: string[]): Promise<void> {
    const g: SharedCodeGroup = await (await this.groups()).setLocked(groupArg(group), this.locked, { actor: cliActor(), via: 'cli' });
    out(
      this.locked
        ? `code group #${g.id} ${g.name} locked: no new install lands on it (its ${g.installCount} install(s) keep running)`
        : `code group #${g.id} ${g.name} unlocked: it takes new installs again (${g.installCount}/${g.installLimit})`,
    );
  }
}

@Command({
  name: 'codegroup:lock',
  arguments: '<group>',
  description: 'lock a code group (id or name): no new install lands on it, orders go to other groups of its tier (a customer pinned to it waits); its installs keep running',
})
export class CodeGroupLockCommand extends CodeGroupLockRunner {
  protected readonly locked = true;
}

@Command({ name: 'codegroup:unlock', arguments: '<group>', description: 'unlock a code group (id or name): it takes new installs again' })
export class CodeGroupUnlockCommand extends CodeGroupLockRunner {
  protected readonly locked = false;
}
