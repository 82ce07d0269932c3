import { Injectable, Logger } from '@nestjs/common';
import { DataSource, In, LessThanOrEqual } from 'typeorm';
import { AuditEventRepository, InstallBackup, Job } from '@app/catalog';
import { RecurringTask } from '@app/queue';
import { InstallBackups } from './install-backups.service.js';

/** How often the cron role looks for expired backups. */
export const BACKUP_PURGE_EVERY_MS = 10 * 60_000;

/**
 * Deletes the removal backups whose grace period ended (kept, or restored
 * and no longer needed): their directory removed, then the row `purged` by
 * a conditional update (two engines may both remove the directory: removing
 * a gone directory is nothing). A backup a restore is using is left.
 */
@Injectable()
export class BackupPurge {
  private readonly logger = new Logger('BackupPurge');

  constructor(
    private readonly dataSource: DataSource,
    private readonly backups: InstallBackups,
    private readonly audit: AuditEventRepository,
  ) {}

  async sweep(now = new Date()): Promise<{ purged: number[]; failed: number[] }> {
    const repo = this.dataSource.getRepository(InstallBackup);
    const expired = await repo.find({ where: { state: In(['kept', 'restored']), expiresAt: LessThanOrEqual(now) }, order: { id: 'ASC' }, take: 100 });
    const result = { purged: [] as number[], failed: [] as number[] };
    for (const backup of expired) {
      const busy = await this.dataSource.getRepository(Job).count({ where: { resourceKey: `install:${backup.installId}`, kind: 'install.restore', state: In(['ready', 'blocked', 'running']) } });
      if (busy > 0) continue;
      try {
        await this.backups.removeFiles(backup);
      } catch (error) {
        result.failed.push(backup.id);
        await repo.update({ id: backup.id }, { error: `purge: ${(error as Error).message}`.slice(0, 1024) });
        this.logger.warn(`backup ${backup.id} of install ${backup.installId} could not be purged: ${(error as Error).message}`);
        continue;
      }
      const marked = await repo.update({ id: backup.id, state: backup.state }, { state: 'purged' });
      if ((marked.affected ?? 0) === 0) continue;
      result.purged.push(backup.id);
      await this.audit.record({ actor: 'backup-purge', via: 'cron', action: 'install.backup.purged', targetType: 'install', targetId: backup.installId, details: { backupId: backup.id, path: backup.path, expiredAt: backup.expiresAt, before: { state: backup.state }, after: { state: 'purged' } } });
    }
    return result;
  }
}

/** Expired backups, every ten minutes (a recurring task). */
@Injectable()
export class BackupPurgeTask extends RecurringTask {
  constructor(private readonly purge: BackupPurge) {
    super({ name: 'BackupPurge', everyMs: BACKUP_PURGE_EVERY_MS, failure: 'purging expired install backups failed' });
  }

  protected async tick(): Promise<void> {
    await this.purge.sweep();
  }
}
