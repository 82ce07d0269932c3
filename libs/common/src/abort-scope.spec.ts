import { currentAbortSignal, withAbortSignal } from './abort-scope.js';

describe('abort scope', () => {
  it('gives the scope\'s signal to everything called inside it, across awaits and timers, and none outside', async () => {
    const controller = new AbortController();
    expect(currentAbortSignal()).toBeUndefined();
    const seen = await withAbortSignal(controller.signal, async () => {
      await Promise.resolve();
      const inTimer = await new Promise<AbortSignal | undefined>((resolve) => setTimeout(() => resolve(currentAbortSignal()), 1));
      return [currentAbortSignal(), inTimer];
    });
    expect(seen).toEqual([controller.signal, controller.signal]);
    expect(currentAbortSignal()).toBeUndefined();
  });

  it('aborts a scope opened inside another when either signal fires', () => {
    for (const fired of ['outer', 'inner'] as const) {
      const outer = new AbortController();
      const inner = new AbortController();
      const signal = withAbortSignal(outer.signal, () => withAbortSignal(inner.signal, () => currentAbortSignal()))!;
      expect(signal.aborted).toBe(false);
      (fired === 'outer' ? outer : inner).abort(new Error(`${fired} lost its lease`));
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toEqual(new Error(`${fired} lost its lease`));
    }
  });
});
