import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { AuditEventRepository, Install, type AuditActor } from '@app/catalog';
import { DomainError, NotFoundError, unifiedDiff } from '@app/common';
import { DispatcherInputLoader, installFile, NginxRebuilds, renderEach, renderInstall, RenderError, renderUpstream, type InstallInput, type RewriteInput } from '@app/webserver';
import type { RewriteRuleDto, RewritesPlanView } from './dto/rewrites.dto.js';

/**
 * An install's rewrite rules (the seed's "Custom rewrite rules"), set by
 * support: every dispatcher's render of the install with the new rules must
 * pass (a rule on a path its manifest already routes is refused here, not
 * quarantined later). The plan shows each vhost before and after, from the
 * same renderer the rebuild uses.
 */
@Injectable()
export class InstallRewritesService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly rebuilds: NginxRebuilds,
    private readonly loader: DispatcherInputLoader,
    private readonly audit: AuditEventRepository,
  ) {}

  /** What `set` would do: the vhost diffs; nothing stored, audited or rebuilt. Refused rules fail as `set` does. */
  async plan(id: number, rules: readonly RewriteRuleDto[]): Promise<RewritesPlanView> {
    const install = await this.changeable(id);
    const after = stored(rules);
    const servers = await this.render(id, after);
    const before = (install.customRewrites ?? []) as RewriteInput[];
    return { installId: id, dryRun: true, changed: !sameRules(before, after), before, after, servers };
  }

  /**
   * Stores the rules, audits before and after, and asks the install's
   * dispatchers for a rebuild. Rules equal to the stored ones change nothing
   * (no event, no rebuild).
   */
  async set(id: number, rules: readonly RewriteRuleDto[], by: AuditActor): Promise<{ rules: RewriteInput[]; changed: boolean }> {
    const install = await this.changeable(id);
    const after = stored(rules);
    await this.render(id, after);
    const before = (install.customRewrites ?? []) as RewriteInput[];
    if (sameRules(before, after)) return { rules: after, changed: false };
    await this.dataSource.getRepository(Install).update({ id }, { customRewrites: after });
    await this.audit.record({ ...by, action: 'install.rewrites', targetType: 'install', targetId: id, details: { before, after } });
    await this.rebuilds.requestForInstall(id);
    return { rules: after, changed: true };
  }

  private async changeable(id: number): Promise<Install> {
    const install = await this.dataSource.getRepository(Install).findOneBy({ id });
    if (!install) throw new NotFoundError('Install', id);
    if (install.status === 'removing' || install.status === 'removed') throw new DomainError('INSTALL_REMOVED', `Install ${id} is ${install.status}`, 409, { installId: id });
    return install;
  }

  /** The install's vhost on each of its dispatchers with the stored rules and with these; refused rules throw. */
  private async render(id: number, rules: RewriteInput[]): Promise<RewritesPlanView['servers']> {
    const plans: RewritesPlanView['servers'] = [];
    for (const server of await this.rebuilds.dispatchersOf(id)) {
      const input = await this.loader.load(server, id);
      const mine = input.installs.find((i) => i.id === id);
      const next = renderEach({ ...input, installs: input.installs.map((i) => (i.id === id ? { ...i, rewrites: rules } : i)) });
      if (next.refused.length > 0) throw new DomainError('REWRITE_REFUSED', next.refused[0]!.error, 400, { installId: id, server: server.hostname });
      // Not served here now (not building or live): no vhost to compare.
      if (!mine) continue;
      // The install's server blocks, as its own file has them: without rules of its own it shares them (its hostnames in a block of
      // the same locations, its document root from its hosts file), so a diff of its files would be one file gone and another new.
      const file = installFile(mine.fsName);
      const ports = { http: input.httpPort ?? 80, https: input.httpsPort ?? 443 };
      const vhost = (install: InstallInput) => {
        try {
          return renderInstall(install, input.accessLog, renderUpstream(install).name, ports, { acmeChallengeDir: input.acmeChallengeDir });
        } catch (error) {
          if (error instanceof RenderError) return '';
          throw error;
        }
      };
      plans.push({ server: server.hostname, file, diff: unifiedDiff(vhost(mine), vhost({ ...mine, rewrites: rules }), { fromFile: `a/${file} (${server.hostname})`, toFile: `b/${file} (${server.hostname})` }) });
    }
    return plans;
  }
}

function stored(rules: readonly RewriteRuleDto[]): RewriteInput[] {
  return rules.map((r) => ({ match: r.match, from: r.from, to: r.to, code: r.code }));
}

function sameRules(a: readonly RewriteInput[], b: readonly RewriteInput[]): boolean {
  return JSON.stringify(stored(a)) === JSON.stringify(stored(b));
}
