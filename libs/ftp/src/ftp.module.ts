import { Module } from '@nestjs/common';
import { BindMountsTask } from './bind-mounts.task.js';
import { BindMounts } from './bind-mounts.service.js';
import { FtpConfigTask } from './ftp-config.task.js';
import { FtpServers } from './ftp-servers.service.js';

/** The installs' FTP: bind mounts of their copied paths into their FTP trees, and ProFTPD on the dispatchers. */
@Module({
  providers: [BindMounts, BindMountsTask, FtpServers, FtpConfigTask],
  exports: [BindMounts, FtpServers],
})
export class FtpModule {}
