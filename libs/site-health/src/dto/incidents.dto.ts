import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, Max, Min } from 'class-validator';

export class ListIncidentsQuery {
  @ApiPropertyOptional({ description: 'only this install' })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  installId?: number;

  @ApiPropertyOptional({ description: 'true: only open incidents; false: only closed ones' })
  @IsOptional()
  @Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean({ message: 'open must be true or false' })
  open?: boolean;

  @ApiPropertyOptional({ default: 100, maximum: 1000 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit?: number;
}

export class IncidentView {
  @ApiProperty() id!: number;
  @ApiProperty() installId!: number;
  @ApiProperty() openedAt!: string;
  @ApiProperty({ nullable: true, type: String }) closedAt!: string | null;
  @ApiProperty() problem!: string;
  @ApiProperty({ nullable: true, type: String }) lastProblem!: string | null;
  @ApiProperty() failedRounds!: number;
  @ApiProperty() cachesCleared!: boolean;
  @ApiProperty() mailedOpened!: boolean;
  @ApiProperty() mailedClosed!: boolean;
}
