import { ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, Matches, Max, MaxLength, Min } from 'class-validator';
import { JOB_STATES, type JobState } from '@app/catalog';

export class ListJobsQuery {
  @ApiPropertyOptional({ enum: JOB_STATES })
  @IsOptional()
  @IsIn(JOB_STATES)
  state?: JobState;

  @ApiPropertyOptional({ example: 'install.build' })
  @IsOptional()
  @Matches(/^[a-z][a-z0-9.-]{0,63}$/, { message: 'kind must be a job kind like install.build' })
  kind?: string;

  @ApiPropertyOptional({ example: 'install:42' })
  @IsOptional()
  @MaxLength(191)
  @Matches(/^[A-Za-z0-9:._-]+$/, { message: 'resourceKey must be letters, digits and : . _ -' })
  resourceKey?: string;

  @ApiPropertyOptional({ description: 'Only jobs with a smaller id (next page)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  beforeId?: number;

  @ApiPropertyOptional({ default: 50, maximum: 500 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;
}

export class JobOutputQuery {
  @ApiPropertyOptional({ description: 'Only lines after this line id (tail -f: pass the last id seen)' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  after?: number;
}
