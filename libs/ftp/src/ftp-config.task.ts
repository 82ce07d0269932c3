import { Inject, Injectable } from '@nestjs/common';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { FtpServers } from './ftp-servers.service.js';

/** ProFTPD's config on every dispatcher rendered from the catalog (written, checked and reloaded only when it changed), every minute. */
@Injectable()
export class FtpConfigTask extends RecurringTask {
  constructor(private readonly servers: FtpServers, @Inject(ENGINE_CONFIG) config: EngineConfig) {
    super({ name: 'FtpConfig', everyMs: 60_000, enabled: config.ftp.enabled, failure: 'the FTP service config failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.servers.apply({ log: (line) => context.log(line) });
  }
}
