import type { ValidationError } from '@nestjs/common';
import { flattenValidationErrors } from './validation.js';

describe('flattenValidationErrors', () => {
  it('names nested fields with their path', () => {
    const errors: ValidationError[] = [
      { property: 'name', constraints: { isString: 'name must be a string' }, children: [] },
      {
        property: 'sites',
        children: [
          {
            property: '0',
            children: [{ property: 'hostname', constraints: { isFqdn: 'hostname must be a hostname' }, children: [] }],
          },
        ],
      },
    ];
    expect(flattenValidationErrors(errors)).toEqual([
      { field: 'name', problems: ['name must be a string'] },
      { field: 'sites.0.hostname', problems: ['hostname must be a hostname'] },
    ]);
  });
});
