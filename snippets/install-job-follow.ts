import { SnippetError } from './cli-output.js';

export { followJob, parseTimeout } from './follow-job.js';

/** `--id N`: a positive install id. */
export function parseInstallId(value: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) < 1 || Number(value) > 2_147_483_647) throw new SnippetError('--id is an install id (a positive number)');
  return Number(value);
}
