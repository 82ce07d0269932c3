import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsInt, IsOptional, Min } from 'class-validator';

export class ChangeCodebaseDto {
  @ApiProperty({ example: 7, description: 'the code group the install moves to: ready, unlocked, not full, of the same tier and the same revision as the install' })
  @IsInt()
  @Min(1)
  groupId: number;

  @ApiPropertyOptional({ description: 'check everything and answer the plan (200); nothing is queued' })
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
}

export class ChangeCodebaseView {
  @ApiProperty() installId: number;
  @ApiProperty() fromGroupId: number;
  @ApiProperty() toGroupId: number;
  @ApiProperty({ description: 'the release the install stays on (both groups have it)' }) revision: string;
  @ApiProperty({ type: [String], description: 'the servers whose `.code` link is switched' }) servers: string[];
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'the saga job (GET /v1/jobs/:id); null on a dry run' }) jobId: number | null;
  @ApiProperty() dryRun: boolean;
}
