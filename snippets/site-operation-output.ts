import { DomainError } from '@app/common';
import type { JobsAdminService } from '@app/queue';
import type { SiteOperationView } from '@app/sites';
import { out, SnippetError } from './cli-output.js';
import { followJob } from './follow-job.js';

export { parseTimeout } from './follow-job.js';

/** Options every site operation snippet takes. */
export interface FollowOptions {
  dryRun?: boolean;
  wait?: boolean;
  timeout?: number;
}

/** Runs the request, turning a refusal into the snippet's error (exit 1, its code first). */
export async function request(call: () => Promise<SiteOperationView>): Promise<SiteOperationView> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof DomainError) throw new SnippetError(`${e.code}: ${e.message}`);
    throw e;
  }
}

/** The plan, a line per change (what a dry run answers). */
export function printPlan(view: SiteOperationView): void {
  const p = view.plan;
  const ip = (i: { ip: string; server: string }) => `${i.ip} on ${i.server}`;
  if (p.reserveNames.length) out(`  names claimed:   ${p.reserveNames.join(', ')}`);
  if (p.releaseNames.length) out(`  names released:  ${p.releaseNames.join(', ')}`);
  if (p.allocateIps.length) out(`  IPs allocated:   ${p.allocateIps.map(ip).join(', ')}`);
  if (p.releaseIps.length) out(`  IPs released:    ${p.releaseIps.map(ip).join(', ')}`);
  for (const d of p.dns) {
    const records = (rs: { type: string; content: string }[]) => (rs.length ? rs.map((r) => `${r.type} ${r.content}`).join(', ') : 'nothing');
    out(`  dns ${d.name}: ${d.managed ? `${records(d.before)} -> ${records(d.after)} (zone ${d.zone})` : `not in a zone we manage: the customer sets ${records(d.after)}`}`);
  }
  for (const v of p.vhosts) out(`  nginx ${v.server}: ${v.change}`);
  if (p.sqlTemplates.length) out(`  SQL templates:   ${p.sqlTemplates.join(', ')}`);
  if (p.configFiles.length) out(`  config files:    ${p.configFiles.join(', ')}`);
  for (const note of p.notes) out(`  ${note}`);
}

/** Prints the plan; on a real run, follows the job's output until it ends (an end other than done is an error). */
export async function followOperation(view: SiteOperationView, what: string, jobs: JobsAdminService, options: FollowOptions): Promise<void> {
  if (view.jobId === null) {
    out(`dry run: ${what}; nothing changed`);
    printPlan(view);
    return;
  }
  out(`${what}: job ${view.jobId} queued`);
  printPlan(view);
  if (options.wait === false) return;
  await followJob(jobs, view.jobId, { timeoutS: options.timeout ?? 600 });
}

export function parseId(value: string | undefined, what: string): number {
  if (!/^\d{1,9}$/.test(value ?? '') || Number(value) < 1) throw new SnippetError(`the ${what} id is a number`);
  return Number(value);
}
