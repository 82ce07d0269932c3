import { stepNeeds } from './saga-runner.service.js';

const step = (name: string, after?: string[]) => ({ name, after, execute: async () => undefined, compensate: async () => undefined });

describe('stepNeeds', () => {
  it('makes a step without `after` need the one before it, and one with `after` the steps it names', () => {
    const saga = { name: 's', steps: [step('a'), step('b'), step('c', ['a']), step('d', ['b', 'c']), step('mail')] };
    expect(stepNeeds(saga, 4)).toEqual([[], [0], [0], [1, 2], [0, 1, 2, 3]]);
  });

  it('makes the pivot and every step after it need everything before them, whatever they name', () => {
    const saga = { name: 's', steps: [step('a'), step('b', ['a']), step('mail', ['a']), step('after-mail', ['a'])] };
    expect(stepNeeds(saga, 2)).toEqual([[], [0], [0, 1], [0, 1, 2]]);
  });

  it('refuses a step that needs a later step, itself or an unknown one', () => {
    for (const after of [['c'], ['b'], ['nope']]) {
      const saga = { name: 's', steps: [step('a'), step('b', after), step('c')] };
      expect(() => stepNeeds(saga, 3)).toThrow(`s: step b needs ${after[0]}, which is not a step before it`);
    }
  });
});
