import { Controller, Delete, Get, HttpCode, Param, ParseIntPipe, Post, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { RequireScope, type Principal } from '@app/auth';
import { JobLineView, JobView, QueueStatsView } from './dto/job.view.js';
import { JobOutputQuery, ListJobsQuery } from './dto/list-jobs.query.js';
import { JobsAdminService } from './jobs-admin.service.js';

@ApiTags('queue')
@ApiBearerAuth()
@RequireScope('admin')
@Controller('v1/jobs')
export class JobsController {
  constructor(private readonly jobs: JobsAdminService) {}

  @Get()
  @ApiOperation({ summary: 'List jobs, newest first (filter by state, kind, resource key)' })
  @ApiResponse({ status: 200, type: JobView, isArray: true })
  async list(@Query() query: ListJobsQuery): Promise<JobView[]> {
    return (await this.jobs.list(query)).map(JobView.of);
  }

  @Get('stats')
  @ApiOperation({ summary: 'Jobs per state and the age of the oldest due job' })
  @ApiResponse({ status: 200, type: QueueStatsView })
  async stats(): Promise<QueueStatsView> {
    return QueueStatsView.of(await this.jobs.stats());
  }

  @Get(':id')
  @ApiOperation({ summary: 'One job' })
  @ApiResponse({ status: 200, type: JobView })
  async get(@Param('id', ParseIntPipe) id: number): Promise<JobView> {
    return JobView.of(await this.jobs.get(id));
  }

  @Get(':id/output')
  @ApiOperation({ summary: "A job's output lines, in order; pass after=<last id> to tail" })
  @ApiResponse({ status: 200, type: JobLineView, isArray: true })
  async output(@Param('id', ParseIntPipe) id: number, @Query() query: JobOutputQuery): Promise<JobLineView[]> {
    return (await this.jobs.output(id, query.after ?? 0)).map(JobLineView.of);
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Run a done, dead or cancelled job again' })
  @ApiResponse({ status: 200, type: JobView })
  async retry(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<JobView> {
    return JobView.of(await this.jobs.retry(id, { actor: `token:${req.principal.name}`, via: 'api' }));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel a job that has not finished (a running one is stopped)' })
  @ApiResponse({ status: 200, type: JobView })
  async cancel(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<JobView> {
    return JobView.of(await this.jobs.cancel(id, { actor: `token:${req.principal.name}`, via: 'api' }));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a finished job with its output' })
  async remove(@Param('id', ParseIntPipe) id: number, @Req() req: { principal: Principal }): Promise<void> {
    await this.jobs.remove(id, { actor: `token:${req.principal.name}`, via: 'api' });
  }
}
