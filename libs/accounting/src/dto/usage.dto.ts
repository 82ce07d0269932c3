import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, Matches } from 'class-validator';

const DAY = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

export class UsageQuery {
  @ApiPropertyOptional({ example: '2026-11-01', description: 'first day (UTC, inclusive); default: 30 days before `to`' })
  @IsOptional()
  @Matches(DAY, { message: 'from must be a day such as 2026-11-01' })
  from?: string;

  @ApiPropertyOptional({ example: '2026-11-30', description: 'last day (UTC, inclusive); default: today' })
  @IsOptional()
  @Matches(DAY, { message: 'to must be a day such as 2026-11-30' })
  to?: string;
}

export class UsageDayView {
  @ApiProperty({ example: '2026-11-02' }) day!: string;
  @ApiProperty({ example: 'shop.example.com' }) hostname!: string;
  @ApiProperty() hits!: number;
  @ApiProperty() bytes!: number;
}

export class UsageView {
  @ApiProperty() installId!: number;
  @ApiProperty() from!: string;
  @ApiProperty() to!: string;
  @ApiProperty({ type: [UsageDayView], description: 'per day and hostname, summed over the dispatchers; days without requests are absent' }) days!: UsageDayView[];
  @ApiProperty({ example: { hits: 1200, bytes: 52428800 } }) totals!: { hits: number; bytes: number };
}
