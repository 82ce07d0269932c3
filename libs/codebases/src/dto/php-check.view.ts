import { ApiProperty } from '@nestjs/swagger';
import type { PhpCheckReport, PhpServerCheck, PhpSettingCheck } from '../php-requirements.js';

export class PhpSettingCheckView implements PhpSettingCheck {
  @ApiProperty({ example: 'memory_limit' }) name: string;
  @ApiProperty({ example: '256M', description: 'what the manifest asks' }) wanted: string;
  @ApiProperty({ example: '128M', nullable: true, type: String, description: "the server's value (php-fpm's php.ini); null when its PHP has no such directive" }) actual: string | null;
  @ApiProperty({ enum: ['same', 'pool', 'unsatisfiable'], description: "same: already so; pool: the install's PHP pool applies it; unsatisfiable: a pool cannot (a problem)" })
  status: PhpSettingCheck['status'];
  @ApiProperty() detail: string;
}

export class PhpServerCheckView implements PhpServerCheck {
  @ApiProperty() serverId: number;
  @ApiProperty() hostname: string;
  @ApiProperty() ok: boolean;
  @ApiProperty({ example: '/usr/sbin/php-fpm8.2', nullable: true, type: String }) binary: string | null;
  @ApiProperty({ enum: ['fpm', 'cli'], nullable: true, description: 'cli: the server has no php-fpm, the php CLI was asked' }) source: PhpServerCheck['source'];
  @ApiProperty({ example: '8.2.36', nullable: true, type: String }) version: string | null;
  @ApiProperty({ example: ['missing PHP extensions: intl'], description: 'why the server does not satisfy the manifest' }) problems: string[];
  @ApiProperty({ example: ['intl'] }) missingExtensions: string[];
  @ApiProperty({ type: [PhpSettingCheckView] }) settings: PhpSettingCheckView[];
  @ApiProperty({ description: 'informational: settings the pool applies, the CLI standing in for php-fpm' }) notes: string[];
  @ApiProperty({ nullable: true, type: String, description: 'the server could not be asked (unreachable, a command failed)' }) error: string | null;
}

export class PhpCheckView implements PhpCheckReport {
  @ApiProperty() groupId: number;
  @ApiProperty() group: string;
  @ApiProperty({ description: 'whether the manifest states PHP requirements' }) required: boolean;
  @ApiProperty({ description: 'every server checked satisfies the manifest' }) ok: boolean;
  @ApiProperty({ type: [PhpServerCheckView] }) servers: PhpServerCheckView[];
}
