import { domainToASCII, domainToUnicode } from 'node:url';
import { Transform } from 'class-transformer';
import { ValidateBy } from 'class-validator';

/**
 * The one hostname rule, shared by the order and inventory DTOs and the nginx
 * renderer, so that nothing accepted at the door is refused when rendered.
 */
export const HOSTNAME_RULE =
  'lower-case ASCII letters, digits and hyphens in dot-separated labels of 1-63 characters (no hyphen first or last, no "--" in positions 3-4 except punycode "xn--"), ' +
  'at least two labels, 253 characters at most; internationalized names as punycode (xn--)';

export interface HostnameRuleOptions {
  /** Allow a single label (`localhost`): server names, never a shop's hostname. */
  singleLabel?: boolean;
}

const LABEL = /^[a-z0-9-]{1,63}$/;

/**
 * What a hostname is stored as: lower-cased, without the root's trailing dot
 * (`Shop.Example.COM.` is `shop.example.com`). Anything else is left as it
 * is for the rule to judge; a non-string is returned unchanged.
 */
export function normalizeHostname<T>(value: T): T | string {
  if (typeof value !== 'string') return value;
  const lower = value.toLowerCase();
  return lower.endsWith('.') && lower.length > 1 ? lower.slice(0, -1) : lower;
}

/** Why `name` (already normalized) breaks the rule (`has an empty label`), or null when it follows it. */
export function hostnameProblem(name: string, options: HostnameRuleOptions = {}): string | null {
  if (typeof name !== 'string') return 'is not a string';
  if (name === '') return 'is empty';
  if (name.length > 253) return 'is longer than 253 characters';
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(name)) {
    const ascii = domainToASCII(name);
    return `is not ASCII: write an internationalized name as punycode${ascii ? ` (${ascii})` : ' (xn--...)'}`;
  }
  const labels = name.split('.');
  if (labels.length < 2 && !options.singleLabel) return 'needs at least two labels, like shop.example.com';
  for (const label of labels) {
    if (label === '') return 'has an empty label (two dots in a row, or a leading dot)';
    if (label.length > 63) return `has a label longer than 63 characters (${label.slice(0, 20)}...)`;
    if (!LABEL.test(label)) return `has characters other than lower-case letters, digits and hyphens in label "${label}"`;
    if (label.startsWith('-') || label.endsWith('-')) return `has a label starting or ending with a hyphen ("${label}")`;
    if (label.slice(2, 4) === '--') {
      if (!label.startsWith('xn--')) return `has "--" in positions 3-4 of a label that is not punycode xn-- ("${label}")`;
      // Punycode that decodes to nothing is not an internationalized name.
      const unicode = domainToUnicode(label);
      if (unicode === label || unicode === '' || domainToASCII(unicode) !== label) return `has a punycode label that does not decode ("${label}")`;
    }
  }
  if (labels.length > 1 && /^[0-9]+$/.test(labels[labels.length - 1]!)) return 'ends in an all-digit label (an IP address is not a hostname)';
  return null;
}

/** True when `name` (already normalized) follows the hostname rule. */
export function isHostname(name: string, options: HostnameRuleOptions = {}): boolean {
  return hostnameProblem(name, options) === null;
}

/**
 * DTO property: normalizes the value (lower case, no trailing dot), then
 * checks it against the hostname rule, naming the exact problem.
 */
export function IsHostname(options: HostnameRuleOptions = {}): PropertyDecorator {
  const normalize = Transform(({ value }: { value: unknown }) => normalizeHostname(value));
  const rule = ValidateBy({
    name: 'isHostname',
    validator: {
      validate: (value: unknown) => typeof value === 'string' && hostnameProblem(value, options) === null,
      defaultMessage: (args) =>
        `${args?.property ?? 'hostname'} must be a ${options.singleLabel ? '' : 'fully qualified '}hostname: ${hostnameProblem(args?.value as string, options) ?? 'is not valid'}`,
    },
  });
  return (target, key) => {
    normalize(target, key);
    rule(target, key);
  };
}
