/** Item states a move's item never leaves. */
export const ITEM_ENDED: ReadonlySet<string> = new Set(['done', 'failed', 'skipped']);

