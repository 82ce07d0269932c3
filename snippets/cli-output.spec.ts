import { table } from './cli-output.js';

describe('table', () => {
  it('aligns columns and shows nulls as a dash', () => {
    expect(table(['id', 'name'], [[1, 'storefront'], [22, null]])).toBe('id  name\n1   storefront\n22  -');
  });
});
