import type { ValidationError } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsArray, IsObject, IsOptional, IsString, ValidateNested } from 'class-validator';
import { ValidationFailedError } from './domain-error.js';
import { createValidationPipe, flattenValidationErrors, prototypeKeyProblems, validateDto } from './validation.js';

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

class Item {
  @IsString() a: string;
}

class Body {
  @IsString() name: string;

  @IsArray()
  @ValidateNested({ each: true })
  @Type(() => Item)
  items: Item[];

  @IsOptional()
  @IsObject()
  attributes?: Record<string, string>;
}

const pipe = createValidationPipe();
const viaPipe = (json: string) => pipe.transform(JSON.parse(json), { type: 'body', metatype: Body });
const viaDto = (json: string) => validateDto(Body, JSON.parse(json));
const fieldsOf = async (attempt: Promise<unknown>) => {
  const error = await attempt.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ValidationFailedError);
  return (error as ValidationFailedError).fields;
};

describe.each([
  ['the validation pipe', viaPipe],
  ['validateDto', viaDto],
])('%s refuses prototype keys like any unknown member', (_name, check) => {
  it.each(['__proto__', 'constructor', 'prototype'])('refuses %s at the top, in nested DTOs and in maps', async (key) => {
    const item = JSON.stringify({ a: 'b' });
    expect(await fieldsOf(check(`{"name":"x","items":[${item}],"${key}":{"polluted":true}}`))).toEqual([
      { field: key, problems: [`property ${key} should not exist`] },
    ]);
    expect(await fieldsOf(check(`{"name":"x","items":[${item},{"a":"c","${key}":{"polluted":true}}]}`))).toEqual([
      { field: `items.1.${key}`, problems: [`property ${key} should not exist`] },
    ]);
    expect(await fieldsOf(check(`{"name":"x","items":[${item}],"attributes":{"${key}":"v"}}`))).toEqual([
      { field: `attributes.${key}`, problems: [`property ${key} should not exist`] },
    ]);
  });

  it('lists them with the other problems', async () => {
    const fields = await fieldsOf(check('{"name":1,"items":[],"extra":true,"__proto__":{"x":1}}'));
    expect(fields.map((f) => f.field).sort()).toEqual(['__proto__', 'extra', 'name']);
  });

  it('still accepts a clean body', async () => {
    expect(await check('{"name":"x","items":[{"a":"b"}],"attributes":{"k":"v"}}')).toMatchObject({ name: 'x', items: [{ a: 'b' }] });
  });
});

describe('prototypeKeyProblems', () => {
  it('walks deep values without recursion limits and leaves class instances alone', () => {
    let deep: unknown = JSON.parse('{"__proto__":1}');
    for (let i = 0; i < 20_000; i++) deep = { d: deep };
    expect(prototypeKeyProblems(deep)).toHaveLength(1);
    expect(prototypeKeyProblems({ when: new Date(), data: Buffer.from('x') })).toEqual([]);
  });
});
