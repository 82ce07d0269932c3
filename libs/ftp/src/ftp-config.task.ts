import { Injectable } from '@nestjs/common';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { FtpServers } from './ftp-servers.service.js';

/** ProFTPD's config on every dispatcher rendered from the catalog (written, checked and reloaded only when it changed), every minute. */
@Injectable()
export class FtpConfigTask extends RecurringTask {
  constructor(private readonly servers: FtpServers) {
    super({ name: 'FtpConfig', everyMs: 60_000, failure: 'the FTP service config failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.servers.apply({ log: (line) => context.log(line) });
  }
}
