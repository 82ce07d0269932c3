import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsEmail, IsIn, IsInt, IsObject, IsOptional, Matches, Max, MaxLength, Min, ValidateIf, ValidateNested } from 'class-validator';
import { LICENSES, PIN_ATTRIBUTE_NAME, PIN_ATTRIBUTE_VALUE, type CodeGroupState, type License, type SharedCodeGroup } from '@app/catalog';
import { CodebaseManifest } from '../manifest.js';
import { redactRepoUrl } from '../repo-url.js';

/**
 * Repository URLs git may fetch from: https, ssh, git and file URLs,
 * scp-like `user@host:path`, or an absolute path on the group's master.
 * Never an option (`-...`) nor a transport helper (`ext::`).
 */
export const REPO_URL = /^((https?|ssh|git|file):\/\/[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-]+|\/[A-Za-z0-9._/-]+)$/;
/** A commit, tag or branch name; never an option or a range. */
export const REVISION = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,128}$/;
/** The group's directory name under the shared code root. */
export const GROUP_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** An order attribute and its value (what a pin rule's matchAttribute and matchValue accept). */
export class PinAttributeDto {
  @ApiProperty({ example: 'reseller' })
  @Matches(PIN_ATTRIBUTE_NAME, { message: 'pinFor.attribute.name must be lower-case letters, digits and _' })
  name: string;

  @ApiProperty({ example: 'acme' })
  @Matches(PIN_ATTRIBUTE_VALUE, { message: 'pinFor.attribute.value must be 1-128 printable characters' })
  value: string;
}

/** Whose orders a group of their own takes: a customer's email, or an order attribute (one of them). */
export class PinForDto {
  @ApiPropertyOptional({ example: 'bigcustomer@example.com' })
  @ValidateIf((o: PinForDto) => o.attribute === undefined || o.email !== undefined)
  @Transform(({ value }) => (typeof value === 'string' ? value.toLowerCase() : value))
  @IsEmail({}, { message: 'pinFor.email must be an email address (or give pinFor.attribute)' })
  @MaxLength(254)
  email?: string;

  @ApiPropertyOptional({ type: PinAttributeDto })
  @ValidateIf((o: PinForDto) => o.email === undefined || o.attribute !== undefined)
  @IsObject({ message: 'pinFor.attribute must be {name, value} (or give pinFor.email)' })
  @ValidateNested()
  @Type(() => PinAttributeDto)
  attribute?: PinAttributeDto;
}

export class CreateCodeGroupDto {
  @ApiProperty({ example: 'paid-2026a', description: 'also its directory under the master\'s shared code root' })
  @Matches(GROUP_NAME, { message: 'name must be lower-case letters, digits, _ and - (up to 64)' })
  name: string;

  @ApiProperty({ enum: LICENSES })
  @IsIn(LICENSES)
  tier: License;

  @ApiProperty({ example: 'https://git.example.com/shop.git' })
  @MaxLength(1024)
  @Matches(REPO_URL, { message: 'repoUrl must be an https, ssh, git or file URL, user@host:path, or an absolute path' })
  repoUrl: string;

  @ApiProperty({ example: 'main', description: 'commit, tag or branch to check out' })
  @Matches(REVISION, { message: 'revision must be a commit, tag or branch name' })
  revision: string;

  @ApiProperty({ description: 'dispatcher holding the checkout; it is synced from there to the other dispatchers and handlers' })
  @IsInt()
  @Min(1)
  masterServerId: number;

  @ApiProperty({ example: 200, description: 'most installs the group may hold (with pinFor: optional, 1 by default)' })
  @ValidateIf((o: CreateCodeGroupDto) => o.pinFor == null || o.installLimit !== undefined)
  @IsInt()
  @Min(1)
  @Max(100_000)
  installLimit?: number;

  @ApiPropertyOptional({ description: 'reserved for pinned customers: never chosen by the fewest-installs rule' })
  @IsOptional()
  @IsBoolean()
  pinned?: boolean;

  @ApiPropertyOptional({
    type: PinForDto,
    description: "a customer's own codebase in one call: the group is created pinned (limit 1 unless given) with a pin rule (priority 0) sending that customer's orders to it, in one transaction",
  })
  @IsOptional()
  @IsObject({ message: 'pinFor must be {email} or {attribute: {name, value}}' })
  @ValidateNested()
  @Type(() => PinForDto)
  pinFor?: PinForDto;

  @ApiPropertyOptional({ type: CodebaseManifest, description: `for a codebase that carries no ${'hosting.manifest.json'}` })
  @IsOptional()
  @ValidateNested()
  @Type(() => CodebaseManifest)
  manifest?: CodebaseManifest;
}

export class CodeGroupView {
  @ApiProperty() id: number;
  @ApiProperty() name: string;
  @ApiProperty({ enum: LICENSES }) tier: License;
  @ApiProperty({ example: 'https://deploy:***@git.example.com/shop.git', description: 'credentials in it shown as ***' }) repoUrl: string;
  @ApiProperty({ nullable: true, description: 'commit checked out; null until the clone has finished' }) revision: string | null;
  @ApiProperty() path: string;
  @ApiProperty() masterServerId: number;
  @ApiProperty() installLimit: number;
  @ApiProperty() installCount: number;
  @ApiProperty() pinned: boolean;
  @ApiProperty({ description: 'locked: no new install lands on it; its installs keep running' }) locked: boolean;
  @ApiProperty() state: CodeGroupState;
  @ApiProperty({ nullable: true, description: 'the manifest in effect (given, or read from the checkout)' }) manifest: Record<string, unknown> | null;

  static of(group: SharedCodeGroup): CodeGroupView {
    const { id, name, tier, repoUrl, revision, path, masterServerId, installLimit, installCount, pinned, locked, state, manifest } = group;
    return { id, name, tier, repoUrl: redactRepoUrl(repoUrl), revision, path, masterServerId, installLimit, installCount, pinned, locked, state, manifest };
  }
}

/** What an operator changes on a group: retire it (for good), or lock / unlock it. At least one. */
export class UpdateCodeGroupDto {
  @ApiPropertyOptional({ enum: ['retired'], description: 'retired: no new install is placed in the group; its installs keep it' })
  @IsOptional()
  @IsIn(['retired'], { message: "state can only be set to 'retired'" })
  state?: 'retired';

  @ApiPropertyOptional({ description: 'locked: no new install lands on it (orders go to other groups of the tier; pinned customers wait); its installs keep running. false unlocks it' })
  @IsOptional()
  @IsBoolean({ message: 'locked must be true or false' })
  locked?: boolean;
}

export class CodeGroupRemovalView {
  @ApiProperty({ type: CodeGroupView, description: 'retired with no room until its removal job deletes it' }) group: CodeGroupView;
  @ApiProperty({ description: 'the queued removal job: removes the checkouts, then the group' }) jobId: number;
  @ApiProperty({ example: '/v1/jobs/12' }) jobUrl: string;
}

export class CodeGroupCreatedView {
  @ApiProperty({ type: CodeGroupView }) group: CodeGroupView;
  @ApiProperty({ description: 'the queued clone job' }) jobId: number;
  @ApiProperty({ example: '/v1/jobs/12' }) jobUrl: string;
  @ApiPropertyOptional({ description: 'with pinFor: the pin rule sending that customer\'s orders to the group' }) pinRuleId?: number;
}
