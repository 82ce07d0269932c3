import { posix } from 'node:path';
import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsInt,
  IsIP,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  Validate,
  ValidateIf,
  ValidatorConstraint,
  type ValidationArguments,
  type ValidatorConstraintInterface,
} from 'class-validator';
import { SERVER_IP_KINDS, SERVER_ROLES, SERVER_STATES, SERVER_TRANSPORTS, type ServerIpKind, type ServerRole, type ServerState, type ServerTransport } from '@app/catalog';
import { IsHostname } from '@app/common';

const ROOT = /^\/(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._\/-]{0,500}$/;
const rootMessage = 'must be an absolute path of letters, digits and . _ - / without . or .. segments';

/** The filesystem roots of a server: the access layer acts inside them, so none may hold another. */
export const SERVER_ROOT_FIELDS = ['homeRoot', 'sharedCodeRoot', 'nginxConfDir', 'cronDir', 'certsRoot', 'phpFpmPoolDir'] as const;
type RootField = (typeof SERVER_ROOT_FIELDS)[number];

/**
 * Why one root of `roots` is unusable, or null: it is `/`, is not written in
 * normal form, or equals, holds or lies inside another root (a home directory
 * named like the certificates root would then be that root). Roots that fail
 * the path pattern are left to it.
 */
export function serverRootProblem(roots: Partial<Record<RootField, unknown>>, field: RootField): string | null {
  const usable = (value: unknown): value is string => typeof value === 'string' && ROOT.test(value);
  const path = roots[field];
  if (!usable(path)) return null;
  if (path === '/') return `${field} must not be / itself`;
  if (posix.normalize(path) !== path || path.endsWith('/')) return `${field} must be written in normal form (${posix.normalize(path).replace(/\/+$/, '') || '/'}), without // or a trailing /`;
  for (const other of SERVER_ROOT_FIELDS) {
    const otherPath = roots[other];
    if (other === field || !usable(otherPath) || otherPath === '/' || posix.normalize(otherPath) !== otherPath || otherPath.endsWith('/')) continue;
    if (path === otherPath) return `${field} is the same directory as ${other} (${path}): the roots must be apart`;
    if (path.startsWith(`${otherPath}/`)) return `${field} ${path} lies inside ${other} ${otherPath}: the roots must be apart`;
    if (otherPath.startsWith(`${path}/`)) return `${field} ${path} contains ${other} ${otherPath}: the roots must be apart`;
  }
  return null;
}

@ValidatorConstraint({ name: 'serverRootApart' })
class ServerRootApart implements ValidatorConstraintInterface {
  validate(_value: unknown, args: ValidationArguments): boolean {
    return serverRootProblem(args.object as Record<RootField, unknown>, args.property as RootField) === null;
  }

  defaultMessage(args: ValidationArguments): string {
    return serverRootProblem(args.object as Record<RootField, unknown>, args.property as RootField) ?? `${args.property} overlaps another root`;
  }
}

export class CreateServerDto {
  @ApiProperty({ example: 'dispatch1.make-a-store.com', description: 'the hostname rule of orders, a single label allowed; stored lower-case' })
  @IsHostname({ singleLabel: true })
  hostname: string;

  @ApiPropertyOptional({ example: '10.0.0.11' })
  @IsOptional()
  @IsIP(undefined, { message: 'privateIp must be an IP address' })
  privateIp?: string | null;

  @ApiProperty({ enum: SERVER_ROLES, isArray: true, example: ['dispatcher', 'handler'] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(SERVER_ROLES.length)
  @ArrayUnique()
  @IsIn(SERVER_ROLES, { each: true, message: `each role must be one of ${SERVER_ROLES.join(', ')}` })
  roles: ServerRole[];

  @ApiProperty({ enum: SERVER_TRANSPORTS, default: 'ssh' })
  @IsIn(SERVER_TRANSPORTS)
  transport: ServerTransport;

  @ApiPropertyOptional({ example: '10.0.0.11' })
  @ValidateIf((o: CreateServerDto) => o.transport === 'ssh')
  @Matches(/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*$|^[0-9a-fA-F:]{2,45}$/, {
    message: 'sshHost must be a hostname or IP address',
  })
  sshHost?: string | null;

  @ApiPropertyOptional({ default: 22 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(65535)
  sshPort?: number | null;

  @ApiPropertyOptional({ example: 'root' })
  @ValidateIf((o: CreateServerDto) => o.transport === 'ssh')
  @Matches(/^[a-z_][a-z0-9_-]{0,31}$/, { message: 'sshUser must be a user name' })
  sshUser?: string | null;

  @ApiPropertyOptional({ description: 'Path of the private key on the engine machine (default: SSH_KEY_PATH)' })
  @IsOptional()
  @Matches(ROOT, { message: `sshKeyRef ${rootMessage}` })
  sshKeyRef?: string | null;

  @ApiPropertyOptional({ example: 'SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8', description: 'Pinned host key fingerprint (ssh-keygen -lf)' })
  @ValidateIf((o: CreateServerDto) => o.transport === 'ssh')
  @Matches(/^SHA256:[A-Za-z0-9+/]{43}$/, { message: 'sshHostKey must be a SHA256:... fingerprint as ssh-keygen -lf prints it' })
  sshHostKey?: string | null;

  // The roots: absolute, in normal form, not /, and none equal to, inside or holding another.
  @ApiProperty({ example: '/usr/home' }) @Matches(ROOT, { message: `homeRoot ${rootMessage}` }) @Validate(ServerRootApart) homeRoot: string;
  @ApiProperty({ example: '/home/shared_codes' }) @Matches(ROOT, { message: `sharedCodeRoot ${rootMessage}` }) @Validate(ServerRootApart) sharedCodeRoot: string;
  @ApiProperty({ example: '/etc/nginx/shops' }) @Matches(ROOT, { message: `nginxConfDir ${rootMessage}` }) @Validate(ServerRootApart) nginxConfDir: string;
  @ApiProperty({ example: '/etc/cron.d' }) @Matches(ROOT, { message: `cronDir ${rootMessage}` }) @Validate(ServerRootApart) cronDir: string;
  @ApiProperty({ example: '/etc/shop-certs', description: 'outside homeRoot: a home directory must never be able to take its name' })
  @Matches(ROOT, { message: `certsRoot ${rootMessage}` })
  @Validate(ServerRootApart)
  certsRoot: string;

  @ApiPropertyOptional({ example: '/etc/php/8.2/fpm/pool.d' })
  @IsOptional()
  @Matches(ROOT, { message: `phpFpmPoolDir ${rootMessage}` })
  @Validate(ServerRootApart)
  phpFpmPoolDir?: string | null;

  @ApiPropertyOptional({ enum: SERVER_STATES, default: 'active' })
  @IsOptional()
  @IsIn(SERVER_STATES)
  state?: ServerState;

  @ApiPropertyOptional({ description: 'Most installs it should host' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  capacity?: number | null;

  @ApiPropertyOptional({
    example: '/etc/mysql/engine-admin.cnf',
    description: 'database servers: MySQL option file on that server with the admin connection (the credentials stay there)',
  })
  @IsOptional()
  @Matches(ROOT, { message: `dbOptionsFile ${rootMessage}` })
  dbOptionsFile?: string | null;

  @ApiPropertyOptional({ example: '/run/nginx.pid', description: 'dispatchers: pid file of the running nginx, whose http block includes <nginxConfDir>/current/shops.conf; reloaded with SIGHUP (default /run/nginx.pid)' })
  @IsOptional()
  @Matches(ROOT, { message: `nginxPidFile ${rootMessage}` })
  nginxPidFile?: string | null;

  @ApiPropertyOptional({ example: '/run/php/php8.2-fpm.pid', description: 'handlers: pid file of the running php-fpm master, whose php-fpm.conf includes <phpFpmPoolDir>/current/*.conf; reloaded with SIGUSR2 (default /run/php/php-fpm.pid)' })
  @IsOptional()
  @Matches(ROOT, { message: `phpFpmPidFile ${rootMessage}` })
  phpFpmPidFile?: string | null;
}

export class UpdateServerDto extends PartialType(CreateServerDto) {}

export class AddIpsDto {
  @ApiProperty({ example: ['208.43.48.2', '208.43.48.3'] })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(256)
  @ArrayUnique()
  @IsIP(undefined, { each: true, message: 'each ip must be an IP address' })
  ips: string[];

  @ApiProperty({ enum: SERVER_IP_KINDS, default: 'shared' })
  @IsIn(SERVER_IP_KINDS)
  kind: ServerIpKind;

  @ApiPropertyOptional({ example: 'carp1', description: 'Failover group of floating IPs' })
  @ValidateIf((o: AddIpsDto) => o.kind === 'floating' || o.failoverGroup !== undefined)
  @IsString()
  @Matches(/^[a-z][a-z0-9_-]{0,31}$/, { message: 'failoverGroup must be a short name like carp1' })
  failoverGroup?: string;
}
