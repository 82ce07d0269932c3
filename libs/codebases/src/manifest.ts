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
export const SECRET_ALPHABETS = ['alnum', 'hex', 'base64url'] as const;
export const SQL_EVENTS = ['install', 'add_site', 'hostname_change'] as const;
export const MANIFEST_FILE = 'hosting.manifest.json';

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

  @ApiProperty({ example: 32 })
  @IsInt()
  @Min(8)
  @Max(128)
  length: number;

  @ApiProperty({ enum: SECRET_ALPHABETS })
  @IsIn(SECRET_ALPHABETS)
  alphabet: (typeof SECRET_ALPHABETS)[number];
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

  @ApiPropertyOptional({ example: 'index.php', description: 'front controller for paths that are not files' })
  @IsOptional()
  @Matches(RELATIVE_PATH, { message: pathMessage('web.frontController') })
  frontController?: string;

  @ApiPropertyOptional({
    example: '/index.php?route=common/home',
    description: 'what the probe requests on each site to prove the shop answers (must be answered by PHP, 2xx or 3xx); default: the site\'s front page (its rel url)',
  })
  @IsOptional()
  @Matches(PROBE_PATH, { message: 'web.probePath must be an absolute URL path (letters, digits and . _ ~ - / @ +, optionally ?query of letters, digits and = & _ . - / %)' })
  @MaxLength(255)
  probePath?: string;
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
