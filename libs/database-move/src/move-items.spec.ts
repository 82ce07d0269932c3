import type { DatabaseMoveItem } from '@app/catalog';
import { itemsToStart } from './move-items.js';

const item = (installId: number, state: DatabaseMoveItem['state'], jobId: number | null = null) => ({ installId, state, jobId }) as DatabaseMoveItem;

describe('itemsToStart', () => {
  it('fills the room the concurrency leaves beside the children in flight, in order', () => {
    const items = [item(1, 'done', 10), item(2, 'running', 11), item(3, 'pending', 12), item(4, 'pending'), item(5, 'pending'), item(6, 'pending')];
    expect(itemsToStart({ concurrency: 4 }, items).map((i) => i.installId)).toEqual([4, 5]);
  });

  it('starts nothing while the move is full, and nothing once every item ended', () => {
    expect(itemsToStart({ concurrency: 1 }, [item(1, 'running', 10), item(2, 'pending')])).toEqual([]);
    expect(itemsToStart({ concurrency: 8 }, [item(1, 'done', 10), item(2, 'failed', 11), item(3, 'skipped')])).toEqual([]);
  });
});
