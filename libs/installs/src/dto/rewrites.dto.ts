import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsOptional, Matches, MaxLength, ValidateNested } from 'class-validator';

/** A path on the shop's own site: letters, digits and `._~@+/-`, no `..`. */
const LOCAL_PATH = /^(?!.*\/\.\.?(\/|$))\/[A-Za-z0-9._~@+\/-]*$/;
/** A local path, or an http(s) URL on a plain host name. */
const TARGET = /^(?!.*\/\.\.?(\/|$))(\/[A-Za-z0-9._~@+\/-]*|https?:\/\/[a-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~@+\/-]*)?)$/;

/** One redirect: an exact path or a path prefix, to a local path or a URL, with 301 or 302. */
export class RewriteRuleDto {
  @ApiProperty({ enum: ['exact', 'prefix'], example: 'exact' })
  @IsIn(['exact', 'prefix'])
  match!: 'exact' | 'prefix';

  @ApiProperty({ example: '/sale', description: 'the path asked for (exact) or its beginning (prefix)' })
  @MaxLength(512)
  @Matches(LOCAL_PATH, { message: 'from must be a path: / then letters, digits and ._~@+/- (no .. segment)' })
  from!: string;

  @ApiProperty({ example: '/category/sale', description: 'a local path, or an http(s) URL' })
  @MaxLength(1024)
  @Matches(TARGET, { message: 'to must be a local path (/...) or an http(s) URL made of letters, digits and ._~@+/-' })
  to!: string;

  @ApiProperty({ enum: [301, 302], example: 301 })
  @IsIn([301, 302])
  code!: 301 | 302;
}

/** An install's rewrite rules, replaced as a whole. */
export class SetRewritesDto {
  @ApiProperty({ type: RewriteRuleDto, isArray: true, description: 'the install\'s rules, all of them (an empty list removes them)' })
  @IsArray()
  @ArrayMaxSize(200)
  @ValidateNested({ each: true })
  @Type(() => RewriteRuleDto)
  rules!: RewriteRuleDto[];

  @ApiPropertyOptional({ description: "answer the plan (200, RewritesPlanView): the install's vhost on each of its dispatchers before and after, as a unified diff from the real renderer; nothing is stored, audited or rebuilt" })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

/** The vhost of the install on one dispatcher, before and after the rules. */
export class RewritesServerPlanView {
  @ApiProperty({ example: 'dispatch1.example.net' }) server: string;
  @ApiProperty({ example: 'shops/bioexcouk.conf', description: "the file under the dispatcher's nginx directory" }) file: string;
  @ApiProperty({ description: 'unified diff (diff -u) of the rendered vhost; empty when the rules change nothing' }) diff: string;
}

export class RewritesPlanView {
  @ApiProperty() installId: number;
  @ApiProperty({ enum: [true] }) dryRun: true;
  @ApiProperty({ description: 'the rules differ from the stored ones' }) changed: boolean;
  @ApiProperty({ type: RewriteRuleDto, isArray: true, description: 'the rules stored now' }) before: RewriteRuleDto[];
  @ApiProperty({ type: RewriteRuleDto, isArray: true, description: 'the rules that would be stored' }) after: RewriteRuleDto[];
  @ApiProperty({ type: RewritesServerPlanView, isArray: true, description: "each dispatcher serving the install now (none while it is not building or live)" }) servers: RewritesServerPlanView[];
}
