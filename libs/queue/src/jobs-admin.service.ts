import { Injectable } from '@nestjs/common';
import { AuditEventRepository, type AuditActor, type Job, type JobLog } from '@app/catalog';
import { DomainError, NotFoundError } from '@app/common';
import { JobRepository, type JobFilter, type QueueStats } from './job.repository.js';

/** What operations staff do to the queue, from the API or a snippet; every change is audited. */
@Injectable()
export class JobsAdminService {
  constructor(
    private readonly jobs: JobRepository,
    private readonly audit: AuditEventRepository,
  ) {}

  list(filter: JobFilter): Promise<Job[]> {
    return this.jobs.list(filter);
  }

  async get(id: number): Promise<Job> {
    const job = await this.jobs.findById(id);
    if (!job) throw new NotFoundError('Job', id);
    return job;
  }

  async output(id: number, afterId = 0, limit = 1000): Promise<JobLog[]> {
    await this.get(id);
    return this.jobs.logs(id, afterId, limit);
  }

  stats(): Promise<QueueStats> {
    return this.jobs.stats();
  }

  /** Runs a finished job again from a fresh attempt count (the seed's rerun of a queue item). */
  async retry(id: number, by: AuditActor): Promise<Job> {
    const job = await this.get(id);
    if (!(await this.jobs.rerun(id))) {
      throw new DomainError('JOB_NOT_RETRYABLE', `Job ${id} is ${job.state}: only done, dead or cancelled jobs can be run again`, 409, {
        state: job.state,
      });
    }
    await this.audit.record({ ...by, action: 'job.retry', targetType: 'job', targetId: id, details: { kind: job.kind, was: job.state } });
    return this.get(id);
  }

  async cancel(id: number, by: AuditActor): Promise<Job> {
    const job = await this.get(id);
    if (!(await this.jobs.cancel(id, `cancelled by ${by.actor}`))) {
      throw new DomainError('JOB_NOT_CANCELLABLE', `Job ${id} is already ${job.state}`, 409, { state: job.state });
    }
    await this.audit.record({ ...by, action: 'job.cancel', targetType: 'job', targetId: id, details: { kind: job.kind, was: job.state } });
    return this.get(id);
  }

  async remove(id: number, by: AuditActor): Promise<void> {
    const job = await this.get(id);
    if (!(await this.jobs.remove(id))) {
      throw new DomainError('JOB_NOT_REMOVABLE', `Job ${id} is ${job.state}: cancel it first`, 409, { state: job.state });
    }
    await this.audit.record({ ...by, action: 'job.remove', targetType: 'job', targetId: id, details: { kind: job.kind, was: job.state } });
  }
}
