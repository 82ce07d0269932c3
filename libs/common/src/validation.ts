import { ValidationPipe, type ArgumentMetadata, type ValidationError } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { ValidationFailedError, type FieldProblem } from './domain-error.js';

/** Flattens class-validator's tree into `items.0.hostname: must be a hostname`. */
export function flattenValidationErrors(errors: ValidationError[], parent = ''): FieldProblem[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own: FieldProblem[] = error.constraints
      ? [{ field, problems: Object.values(error.constraints) }]
      : [];
    return own.concat(flattenValidationErrors(error.children ?? [], field));
  });
}

/**
 * Member names no DTO has and that the libraries drop silently before the
 * whitelist sees them (class-transformer skips `__proto__` and `constructor`,
 * Nest's pipe deletes all three), so a body carrying one would pass as clean.
 */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Every `__proto__`, `constructor` or `prototype` member of a plain value, at
 * any depth (maps such as order attributes included), as the whitelist words
 * an unknown field.
 */
export function prototypeKeyProblems(value: unknown): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const seen = new WeakSet<object>();
  // An explicit stack: a deeply nested body cannot overflow the call stack.
  const stack: { value: unknown; path: string }[] = [{ value, path: '' }];
  while (stack.length > 0) {
    const { value: current, path } = stack.pop()!;
    if (current === null || typeof current !== 'object' || seen.has(current) || !isPlainContainer(current)) continue;
    seen.add(current);
    for (const key of Object.keys(current)) {
      const field = path ? `${path}.${key}` : key;
      if (PROTOTYPE_KEYS.has(key)) problems.push({ field, problems: [`property ${key} should not exist`] });
      else stack.push({ value: (current as Record<string, unknown>)[key], path: field });
    }
  }
  return problems.sort((a, b) => a.field.localeCompare(b.field));
}

/** Arrays and objects as JSON or YAML parsers make them; never class instances (Date, Buffer). */
function isPlainContainer(value: object): boolean {
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** A deep copy of a plain value without its prototype keys (what the validators may safely read). */
function withoutPrototypeKeys(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || !isPlainContainer(value)) return value;
  if (Array.isArray(value)) return value.map(withoutPrototypeKeys);
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!PROTOTYPE_KEYS.has(key)) copy[key] = withoutPrototypeKeys((value as Record<string, unknown>)[key]);
  }
  return copy;
}

/** Nest's pipe, refusing prototype keys instead of deleting them; every problem listed in one error. */
class StrictValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // Before the parent strips them from `value` in place.
    const refused = metadata.metatype && this.toValidate(metadata) ? prototypeKeyProblems(value) : [];
    if (refused.length === 0) return super.transform(value, metadata);
    try {
      await super.transform(value, metadata);
    } catch (error) {
      if (error instanceof ValidationFailedError) throw new ValidationFailedError([...error.fields, ...refused]);
      throw error;
    }
    throw new ValidationFailedError(refused);
  }
}

/**
 * The one validation pipe: unknown fields are refused whatever their name
 * (not silently dropped), bodies become DTO instances, and every problem is
 * listed in the error.
 */
export function createValidationPipe(): ValidationPipe {
  return new StrictValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: (errors) => new ValidationFailedError(flattenValidationErrors(errors)),
  });
}

/**
 * Validates a plain object against a DTO class exactly as the API's pipe does
 * (unknown fields refused whatever their name, every problem listed):
 * snippets accept what the API accepts and nothing else.
 */
export async function validateDto<T extends object>(type: new () => T, plain: unknown): Promise<T> {
  const refused = prototypeKeyProblems(plain);
  const instance = plainToInstance(type, refused.length > 0 ? withoutPrototypeKeys(plain) : plain);
  const errors = await validate(instance, { whitelist: true, forbidNonWhitelisted: true, forbidUnknownValues: true });
  const problems = [...flattenValidationErrors(errors), ...refused];
  if (problems.length > 0) throw new ValidationFailedError(problems);
  return instance;
}
