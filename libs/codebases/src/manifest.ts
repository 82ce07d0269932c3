import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  Equals,
  IsArray,
  IsDefined,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { validateDto, ValidationFailedError } from '@app/common';

/**
 * A path inside the checkout or the home: relative, segments of letters,
 * digits and `. _ - @ +`, never `.` or `..`, no empty segment.
 */
export const RELATIVE_PATH = /^(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*(\/[A-Za-z0-9._@+-]+)*$/;
const pathMessage = (what: string) => `${what} must be relative paths of letters, digits and . _ - @ + (no . or .. segment, no leading /)`;
/** A URL path with an optional plain query, sent as is in a request line. */
const PROBE_PATH = /^\/(?!.*\/\.\.?(\/|\?|$))[A-Za-z0-9._~@+\/-]*(\?[A-Za-z0-9=&_.\/%-]*)?$/;
/** Names usable as template variables and SQL/PHP identifiers of our own. */
const NAME = /^[a-z][a-z0-9_]{0,47}$/;
export const TEMPLATE_LANGUAGES = ['php', 'ini', 'text', 'json'] as const;
export type TemplateLanguage = (typeof TEMPLATE_LANGUAGES)[number];
/**
 * Alphabets of generated secrets: `alnum` A-Z a-z 0-9, `hex` 0-9 a-f,
 * `base64url` alnum and - _, `alpha` A-Z a-z, `digits` 0-9, `symbols` alnum
 * and ! # % + - . : = ? @ ^ _ ~ (no quote, backslash, $ or space: safe in
 * every template language).
 */
export const SECRET_ALPHABETS = ['alnum', 'hex', 'base64url', 'alpha', 'digits', 'symbols'] as const;
export type SecretAlphabet = (typeof SECRET_ALPHABETS)[number];
/** How the front controller receives the original path: REQUEST_URI untouched, a query parameter (original query kept), or PATH_INFO. */
export const ROUTING_PASS = ['uri', 'query', 'pathInfo'] as const;
/** A glob over a URL path or a file name: letters, digits and . _ - with * and ? (no .. segment). */
export const GLOB = /^(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._*?-]+(\/[A-Za-z0-9._*?-]+)*$/;
export const SQL_EVENTS = ['install', 'add_site', 'hostname_change'] as const;
export const MANIFEST_FILE = 'hosting.manifest.json';
/** What an install's secrets may hold in all (they are kept encrypted in one column). */
export const MAX_SECRET_CHARS = 32_768;

export class ManifestLink {
  @ApiProperty({ example: 'storage/vendor', description: 'path in the home' })
  @Matches(RELATIVE_PATH, { message: pathMessage('links.path') })
  @MaxLength(255)
  path: string;

  @ApiProperty({ example: 'system/storage/vendor', description: 'path in the checkout it links to' })
  @Matches(RELATIVE_PATH, { message: pathMessage('links.target') })
  @MaxLength(255)
  target: string;
}

export class ManifestTemplate {
  @ApiProperty({ example: 'heavymetal/config.php.tpl', description: 'template in the checkout' })
  @Matches(RELATIVE_PATH, { message: pathMessage('templates.source') })
  @MaxLength(255)
  source: string;

  @ApiProperty({ example: 'heavymetal/config.php', description: 'file rendered in the home' })
  @Matches(RELATIVE_PATH, { message: pathMessage('templates.target') })
  @MaxLength(255)
  target: string;

  @ApiProperty({ enum: TEMPLATE_LANGUAGES, description: 'how interpolated values are escaped' })
  @IsIn(TEMPLATE_LANGUAGES)
  language: TemplateLanguage;
}

export class ManifestSecret {
  @ApiProperty({ example: 'cookie_key' })
  @Matches(NAME, { message: 'secrets.name must be lower-case letters, digits and _' })
  name: string;

  @ApiProperty({ example: 32, description: '8 to 4,096 characters' })
  @IsInt()
  @Min(8)
  @Max(4096)
  length: number;

  @ApiProperty({ enum: SECRET_ALPHABETS })
  @IsIn(SECRET_ALPHABETS)
  alphabet: SecretAlphabet;
}

/** What the customer receives in the welcome mail (and `GET /v1/installs/:id/credentials`): a label and a text template. */
export class ManifestCredential {
  @ApiProperty({ example: 'Admin password' })
  @Matches(/^[A-Za-z0-9][A-Za-z0-9 ._()\/-]{0,47}$/, { message: 'credentials.label must be 1-48 letters, digits, spaces and . _ ( ) / -' })
  label: string;

  @ApiProperty({ example: '{{secret.admin_password}}', description: 'a text template: literal text and placeholders (a secret, the admin email...)' })
  @IsString()
  @MaxLength(512)
  value: string;
}

export class ManifestTablePrefix {
  @ApiProperty({ example: 'oc_', description: 'the prefix the dump carries (the shop installer\'s placeholder)' })
  @Matches(/^[A-Za-z][A-Za-z0-9_]{0,31}$/, { message: 'sql.tablePrefix.placeholder must be an identifier prefix (letters, digits, _)' })
  placeholder: string;

  @ApiProperty({ example: 'shop_', description: 'what replaces it in every install (also the template value table_prefix)' })
  @Matches(/^[a-z][a-z0-9_]{0,31}$/, { message: 'sql.tablePrefix.value must be lower-case letters, digits and _' })
  value: string;
}

export class ManifestPhpSetting {
  @ApiProperty({ example: 'memory_limit' })
  @Matches(/^[a-z][a-z0-9_.]{0,63}$/, { message: 'php.settings.name must be an ini directive name' })
  name: string;

  @ApiProperty({ example: '256M' })
  @Matches(/^[\x20-\x7e]{0,1024}$/, { message: 'php.settings.value must be printable ASCII without newlines (up to 1,024)' })
  @Matches(/^[^"\\]*$/, { message: 'php.settings.value must not hold a double quote or backslash' })
  value: string;
}

/** What the shop needs of PHP: checked on the group's handlers, applied by the install's PHP pool. */
export class ManifestPhp {
  @ApiPropertyOptional({ example: '8.1', description: 'minimal PHP version' })
  @IsOptional()
  @Matches(/^[0-9]{1,2}\.[0-9]{1,2}(\.[0-9]{1,3})?$/, { message: 'php.minVersion must be a version such as 8.1 or 7.4.33' })
  minVersion?: string;

  @ApiPropertyOptional({ example: ['curl', 'gd', 'mbstring', 'pdo_mysql', 'zip'], description: 'extensions as `php -m` names them (case-insensitive)' })
  @IsOptional()
  @IsArray()
  @ArrayUnique()
  @ArrayMaxSize(64)
  @Matches(/^[A-Za-z][A-Za-z0-9_ ]{0,31}$/, { each: true, message: 'php.extensions must be extension names' })
  extensions?: string[];

  @ApiPropertyOptional({ type: [ManifestPhpSetting], description: 'ini settings the shop depends on' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @ValidateNested({ each: true })
  @Type(() => ManifestPhpSetting)
  settings?: ManifestPhpSetting[];
}

export class ManifestSqlSession {
  @ApiPropertyOptional({ example: 'STRICT_TRANS_TABLES,NO_ZERO_DATE' })
  @IsOptional()
  @Matches(/^[A-Z_]*(,[A-Z_]+)*$/, { message: 'sql.session.sqlMode must be comma-separated mode names' })
  sqlMode?: string;

  @ApiPropertyOptional({ example: 'utf8mb4' })
  @IsOptional()
  @Matches(/^[a-z0-9_]{1,32}$/, { message: 'sql.session.charset must be a character set name' })
  charset?: string;
}

export class ManifestSqlTemplate {
  @ApiProperty({ enum: SQL_EVENTS })
  @IsIn(SQL_EVENTS)
  event: (typeof SQL_EVENTS)[number];

  @ApiProperty({ example: 'heavymetal/sql/templates/install.sql' })
  @Matches(RELATIVE_PATH, { message: pathMessage('sql.templates.file') })
  file: string;
}

export class ManifestSql {
  @ApiProperty({ example: 'heavymetal/sql/updates', description: 'directory of ordered *.sql updates' })
  @IsString()
  @Matches(RELATIVE_PATH, { message: pathMessage('sql.updates') })
  updates: string;

  @ApiPropertyOptional({ type: [ManifestSqlTemplate] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(20)
  @ValidateNested({ each: true })
  @Type(() => ManifestSqlTemplate)
  templates?: ManifestSqlTemplate[];

  @ApiPropertyOptional({ type: ManifestSqlSession })
  @IsOptional()
  @ValidateNested()
  @Type(() => ManifestSqlSession)
  session?: ManifestSqlSession;

  @ApiPropertyOptional({ example: ['--', '#'], description: 'lines starting with these (after blanks) are dropped before splitting, as the shop\'s installer does' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(8)
  @Matches(/^[-#\/*;=]{1,8}$/, { each: true, message: 'sql.stripLinePrefixes must be 1-8 of - # / * ; =' })
  stripLinePrefixes?: string[];

  @ApiPropertyOptional({ type: ManifestTablePrefix, description: 'a table-prefix placeholder replaced as the shop\'s installer does' })
  @IsOptional()
  @ValidateNested()
  @Type(() => ManifestTablePrefix)
  tablePrefix?: ManifestTablePrefix;
}

export class ManifestCron {
  @ApiProperty({ example: '*/5 * * * *' })
  @Matches(/^(@(hourly|daily|weekly|monthly)|([0-9*,/-]+ ){4}[0-9*,/-]+)$/, { message: 'crons.schedule must be five cron fields or @hourly/@daily/@weekly/@monthly' })
  schedule: string;

  @ApiProperty({ example: ['php', 'heavymetal/cron.php'], description: 'argument vector, run in the home' })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(16)
  @Matches(/^[A-Za-z0-9._@+=:,/-]+$/, { each: true, message: 'crons.command words must be letters, digits and . _ @ + = : , / -' })
  command: string[];
}

export class ManifestRouting {
  @ApiProperty({ enum: ROUTING_PASS, description: 'uri: REQUEST_URI untouched; query: ?<param>=<path> with the original query kept; pathInfo: /<front controller>/<path> as PATH_INFO' })
  @IsIn(ROUTING_PASS)
  pass: (typeof ROUTING_PASS)[number];

  @ApiPropertyOptional({ example: '_route_', description: 'the query parameter (pass: query)' })
  @IsOptional()
  @Matches(/^[A-Za-z_][A-Za-z0-9_]{0,31}$/, { message: 'web.routing.param must be a parameter name' })
  param?: string;

  @ApiPropertyOptional({ example: ['*.png', '*.css', '*.js'], description: 'globs over the last path segment: a missing file matching one answers 404 instead of reaching the front controller' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @Matches(GLOB, { each: true, message: 'web.routing.notFound must be globs of letters, digits, . _ - * ?' })
  notFound?: string[];
}

export class ManifestWeb {
  @ApiProperty({ example: 'html' })
  @Matches(RELATIVE_PATH, { message: pathMessage('web.documentRoot') })
  documentRoot: string;

  @ApiProperty({ example: ['index.php'], description: 'the only PHP files that may execute, relative to the document root' })
  @IsArray()
  @ArrayMinSize(1)
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('web.phpEntryPoints') })
  phpEntryPoints: string[];

  @ApiPropertyOptional({ example: ['mas_assets/private'], description: 'paths under the document root that are denied' })
  @IsOptional()
  @IsArray()
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('web.deny') })
  deny?: string[];

  @ApiPropertyOptional({ example: ['*.twig', '*.tpl', '*.ini', '*.log', '*.sql', '.*'], description: 'globs denied anywhere in the tree (over the file name, or the path when they hold /); rendered templates are always denied' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @Matches(GLOB, { each: true, message: 'web.denyPatterns must be globs of letters, digits, . _ - * ?' })
  denyPatterns?: string[];

  @ApiPropertyOptional({ example: 'index.php', description: 'front controller for paths that are not files' })
  @IsOptional()
  @Matches(RELATIVE_PATH, { message: pathMessage('web.frontController') })
  frontController?: string;

  @ApiPropertyOptional({ type: ManifestRouting, description: 'how the front controller gets the path (default: REQUEST_URI untouched), and which misses answer 404' })
  @IsOptional()
  @ValidateNested()
  @Type(() => ManifestRouting)
  routing?: ManifestRouting;

  @ApiPropertyOptional({
    example: '/index.php?route=common/home',
    description: 'what the probe requests on each site to prove the shop answers (must be answered by PHP, 2xx or 3xx); default: the site\'s front page (its rel url)',
  })
  @IsOptional()
  @Matches(PROBE_PATH, { message: 'web.probePath must be an absolute URL path (letters, digits and . _ ~ - / @ +, optionally ?query of letters, digits and = & _ . - / %)' })
  @MaxLength(255)
  probePath?: string;
}

export const SEARCH_ATTRIBUTE_TYPES = ['uint', 'bigint', 'float', 'bool', 'timestamp', 'string'] as const;
export type SearchAttributeType = (typeof SEARCH_ATTRIBUTE_TYPES)[number];
/**
 * The documents query: one line of printable ASCII starting with SELECT, no
 * `#` (a comment in sphinx.conf), backslash (a line continuation there) or
 * `;` (one statement).
 */
const SEARCH_QUERY = /^SELECT\s[\x20-\x22\x24-\x3a\x3c-\x5b\x5d-\x7e]+$/i;

export class ManifestSearchAttribute {
  @ApiProperty({ example: 'price', description: 'a column of the query (its name or alias)' })
  @Matches(NAME, { message: 'search.attributes.name must be lower-case letters, digits and _ (a column of the query)' })
  name: string;

  @ApiProperty({ enum: SEARCH_ATTRIBUTE_TYPES, description: 'Sphinx attribute type (sql_attr_<type>)' })
  @IsIn(SEARCH_ATTRIBUTE_TYPES)
  type: SearchAttributeType;
}

/** A full-text index of the shop's documents (Sphinx), one per install, read with the install's own read-only account. */
export class ManifestSearch {
  @ApiProperty({
    example: 'SELECT p.product_id, d.name, d.description, p.price, UNIX_TIMESTAMP(p.date_modified) AS updated_at FROM oc_product p JOIN oc_product_description d ON d.product_id = p.product_id',
    description: 'one SELECT whose first column is the document id (unique, non-zero integer); the table prefix is applied as for the SQL files',
  })
  @IsString()
  @MaxLength(4000)
  @Matches(SEARCH_QUERY, { message: 'search.query must be one line starting with SELECT, printable ASCII without # ; or backslash' })
  query: string;

  @ApiPropertyOptional({ type: [ManifestSearchAttribute], description: 'columns stored as attributes (filtering, sorting, returned)' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(32)
  @ValidateNested({ each: true })
  @Type(() => ManifestSearchAttribute)
  attributes?: ManifestSearchAttribute[];

  @ApiPropertyOptional({ example: ['name'], description: 'full-text fields also returned as strings (sql_field_string)' })
  @IsOptional()
  @IsArray()
  @ArrayUnique()
  @ArrayMaxSize(32)
  @Matches(NAME, { each: true, message: 'search.stringFields must be lower-case letters, digits and _ (columns of the query)' })
  stringFields?: string[];

  @ApiPropertyOptional({ example: 60, description: 'minutes after which an index is rebuilt even when nothing about it changed (new products reach the search at least this often); default 1,440 (daily)' })
  @IsOptional()
  @IsInt()
  @Min(5)
  @Max(10_080)
  refreshMinutes?: number;
}

/** The codebase manifest (SPEC.md): how a home is built from a shared checkout. */
export class CodebaseManifest {
  @ApiProperty({ example: 1 })
  @Equals(1, { message: 'version must be 1' })
  version: 1;

  @ApiProperty({ example: ['heavymetal/theme', 'heavymetal/snippets', 'html/mas_assets/theme'], description: 'copied per install' })
  @IsArray()
  @ArrayUnique()
  @ArrayMaxSize(200)
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('copy') })
  copy: string[];

  @ApiPropertyOptional({ example: ['install'], description: 'never linked into a home' })
  @IsOptional()
  @IsArray()
  @ArrayUnique()
  @ArrayMaxSize(200)
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('exclude') })
  exclude?: string[];

  @ApiPropertyOptional({ type: [ManifestLink] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(200)
  @ValidateNested({ each: true })
  @Type(() => ManifestLink)
  links?: ManifestLink[];

  @ApiPropertyOptional({ example: ['heavymetal/tmp'], description: 'created empty per install, owned by the web user' })
  @IsOptional()
  @IsArray()
  @ArrayUnique()
  @ArrayMaxSize(200)
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('writable') })
  writable?: string[];

  @ApiPropertyOptional({ example: ['html'], description: 'directories that are real (not links) even with nothing copied below' })
  @IsOptional()
  @IsArray()
  @ArrayUnique()
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('real') })
  real?: string[];

  @ApiPropertyOptional({ type: [ManifestTemplate] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(50)
  @ValidateNested({ each: true })
  @Type(() => ManifestTemplate)
  templates?: ManifestTemplate[];

  @ApiPropertyOptional({ type: [ManifestSecret] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(50)
  @ValidateNested({ each: true })
  @Type(() => ManifestSecret)
  secrets?: ManifestSecret[];

  @ApiPropertyOptional({ type: ManifestSql })
  @IsOptional()
  @ValidateNested()
  @Type(() => ManifestSql)
  sql?: ManifestSql;

  @ApiPropertyOptional({ example: ['heavymetal/cache'], description: 'cleared after an update' })
  @IsOptional()
  @IsArray()
  @Matches(RELATIVE_PATH, { each: true, message: pathMessage('cachePaths') })
  cachePaths?: string[];

  @ApiPropertyOptional({ type: [ManifestCron] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(50)
  @ValidateNested({ each: true })
  @Type(() => ManifestCron)
  crons?: ManifestCron[];

  @ApiPropertyOptional({ type: [ManifestCredential], description: 'what the customer receives in the welcome mail (never logged)' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(10)
  @ValidateNested({ each: true })
  @Type(() => ManifestCredential)
  credentials?: ManifestCredential[];

  @ApiPropertyOptional({ type: ManifestPhp })
  @IsOptional()
  @ValidateNested()
  @Type(() => ManifestPhp)
  php?: ManifestPhp;

  @ApiPropertyOptional({ type: ManifestSearch, description: 'a search index per install (Sphinx); none without it' })
  @IsOptional()
  @ValidateNested()
  @Type(() => ManifestSearch)
  search?: ManifestSearch;

  @ApiProperty({ type: ManifestWeb })
  @IsDefined({ message: 'web must be given (document root, PHP entry points)' })
  @ValidateNested()
  @Type(() => ManifestWeb)
  web: ManifestWeb;
}

/**
 * Validates a manifest (parsed JSON) field by field, then the rules between
 * fields: nothing both copied and excluded, no path copied inside another
 * copied path, one template per target, one secret per name. Every problem
 * is listed.
 */
export async function parseManifest(plain: unknown): Promise<CodebaseManifest> {
  if (typeof plain !== 'object' || plain === null || Array.isArray(plain)) {
    throw new ValidationFailedError([{ field: 'manifest', problems: ['must be a JSON object'] }]);
  }
  const manifest = await validateDto(CodebaseManifest, plain);
  const problems: { field: string; problems: string[] }[] = [];
  const under = (path: string, parent: string) => path === parent || path.startsWith(`${parent}/`);
  const excluded = manifest.exclude ?? [];
  for (const [field, paths] of [
    ['copy', manifest.copy],
    ['writable', manifest.writable ?? []],
    ['links', (manifest.links ?? []).map((l) => l.path)],
    ['templates', (manifest.templates ?? []).map((t) => t.target)],
  ] as const) {
    const clash = paths.filter((p) => excluded.some((e) => under(p, e)));
    if (clash.length > 0) problems.push({ field, problems: [`${clash.join(', ')} also excluded`] });
  }
  const nested = manifest.copy.filter((p) => manifest.copy.some((q) => q !== p && under(p, q)));
  if (nested.length > 0) problems.push({ field: 'copy', problems: [`${nested.join(', ')} inside another copied path`] });
  const duplicate = <T>(values: T[]) => values.filter((v, i) => values.indexOf(v) !== i);
  const targets = duplicate([...(manifest.templates ?? []).map((t) => t.target), ...(manifest.links ?? []).map((l) => l.path)]);
  if (targets.length > 0) problems.push({ field: 'templates', problems: [`${[...new Set(targets)].join(', ')} produced twice`] });
  const secrets = duplicate((manifest.secrets ?? []).map((s) => s.name));
  if (secrets.length > 0) problems.push({ field: 'secrets', problems: [`${[...new Set(secrets)].join(', ')} declared twice`] });
  if (manifest.sql?.session?.sqlMode?.split(',').includes('NO_BACKSLASH_ESCAPES')) {
    // Values are escaped for SQL with backslashes; this mode would turn them into injections.
    problems.push({ field: 'sql.session.sqlMode', problems: ['NO_BACKSLASH_ESCAPES is not supported'] });
  }
  const routing = manifest.web.routing;
  if (routing && !manifest.web.frontController) problems.push({ field: 'web.routing', problems: ['needs web.frontController'] });
  if (routing?.pass === 'query' && !routing.param) problems.push({ field: 'web.routing.param', problems: ['must be given when pass is query'] });
  if (routing && routing.pass !== 'query' && routing.param) problems.push({ field: 'web.routing.param', problems: ['only with pass query'] });
  if (manifest.web.frontController && !manifest.web.phpEntryPoints.includes(manifest.web.frontController)) {
    problems.push({ field: 'web.frontController', problems: [`${manifest.web.frontController} must be one of web.phpEntryPoints`] });
  }
  const secretChars = (manifest.secrets ?? []).reduce((sum, s) => sum + s.length, 0);
  if (secretChars > MAX_SECRET_CHARS) problems.push({ field: 'secrets', problems: [`${secretChars} characters in all; at most ${MAX_SECRET_CHARS}`] });
  const labels = duplicate((manifest.credentials ?? []).map((c) => c.label));
  if (labels.length > 0) problems.push({ field: 'credentials', problems: [`${[...new Set(labels)].join(', ')} declared twice`] });
  if (manifest.search) problems.push(...searchProblems(manifest.search));
  if (problems.length > 0) throw new ValidationFailedError(problems);
  return manifest;
}

/** Every path of the checkout the manifest names (what must exist at the group's revision). */
export function manifestSourcePaths(manifest: CodebaseManifest): string[] {
  return [
    ...manifest.copy,
    ...(manifest.links ?? []).map((l) => l.target),
    ...(manifest.templates ?? []).map((t) => t.source),
    ...(manifest.sql ? [manifest.sql.updates, ...(manifest.sql.templates ?? []).map((t) => t.file)] : []),
    manifest.web.documentRoot,
  ];
}

/** The search section's rules between fields: each name once, each a column the query names. */
function searchProblems(search: ManifestSearch): { field: string; problems: string[] }[] {
  const problems: { field: string; problems: string[] }[] = [];
  const names = [...(search.attributes ?? []).map((a) => a.name), ...(search.stringFields ?? [])];
  const twice = [...new Set(names.filter((n, i) => names.indexOf(n) !== i))];
  if (twice.length > 0) problems.push({ field: 'search', problems: [`${twice.join(', ')} declared twice (an attribute and a string field are distinct columns)`] });
  const select = /^SELECT\s+(.*?)\s+FROM\s/is.exec(search.query)?.[1];
  if (select === undefined) problems.push({ field: 'search.query', problems: ['must be SELECT <document id>, <columns> FROM ...'] });
  else if (/^\*|^[A-Za-z_][A-Za-z0-9_]*\.\*/.test(select.trim())) problems.push({ field: 'search.query', problems: ['must name its columns, the document id first (not *)'] });
  const missing = names.filter((n) => !new RegExp(`\\b${n}\\b`, 'i').test(select ?? ''));
  if (missing.length > 0) problems.push({ field: 'search', problems: [`${missing.join(', ')} not among the columns the query selects`] });
  return problems;
}
