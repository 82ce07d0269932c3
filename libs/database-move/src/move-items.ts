import type { DatabaseMove, DatabaseMoveItem } from '@app/catalog';

/** Item states a move's item never leaves. */
export const ITEM_ENDED: ReadonlySet<string> = new Set(['done', 'failed', 'skipped']);

/** The items not ended and without a child job yet, as many as the move's concurrency leaves room for beside those in flight. */
export function itemsToStart(move: Pick<DatabaseMove, 'concurrency'>, items: readonly DatabaseMoveItem[]): DatabaseMoveItem[] {
  const open = items.filter((i) => !ITEM_ENDED.has(i.state));
  const room = Math.max(0, move.concurrency - open.filter((i) => i.jobId !== null).length);
  return open.filter((i) => i.jobId === null).slice(0, room);
}
