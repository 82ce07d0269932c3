import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsFQDN,
  IsIn,
  IsInt,
  IsIP,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateIf,
} from 'class-validator';
import { SERVER_IP_KINDS, SERVER_ROLES, SERVER_STATES, SERVER_TRANSPORTS, type ServerIpKind, type ServerRole, type ServerState, type ServerTransport } from '@app/catalog';

const ROOT = /^\/(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._\/-]{0,500}$/;
const rootMessage = 'must be an absolute path of letters, digits and . _ - / without . or .. segments';

export class CreateServerDto {
  @ApiProperty({ example: 'dispatch1.make-a-store.com' })
  @IsFQDN({ require_tld: false }, { message: 'hostname must be a hostname' })
  @MaxLength(253)
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

  @ApiProperty({ example: '/usr/home' }) @Matches(ROOT, { message: `homeRoot ${rootMessage}` }) homeRoot: string;
  @ApiProperty({ example: '/home/shared_codes' }) @Matches(ROOT, { message: `sharedCodeRoot ${rootMessage}` }) sharedCodeRoot: string;
  @ApiProperty({ example: '/etc/nginx/shops' }) @Matches(ROOT, { message: `nginxConfDir ${rootMessage}` }) nginxConfDir: string;
  @ApiProperty({ example: '/etc/cron.d' }) @Matches(ROOT, { message: `cronDir ${rootMessage}` }) cronDir: string;
  @ApiProperty({ example: '/usr/home/certs' }) @Matches(ROOT, { message: `certsRoot ${rootMessage}` }) certsRoot: string;

  @ApiPropertyOptional({ example: '/etc/php/8.2/fpm/pool.d' })
  @IsOptional()
  @Matches(ROOT, { message: `phpFpmPoolDir ${rootMessage}` })
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
