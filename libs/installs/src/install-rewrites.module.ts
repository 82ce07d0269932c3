import { Module } from '@nestjs/common';
import { WebserverModule } from '@app/webserver';
import { InstallRewritesService } from './install-rewrites.service.js';

/** An install's rewrite rules: the API (InstallsController) and the install:rewrites snippet use it. */
@Module({
  imports: [WebserverModule],
  providers: [InstallRewritesService],
  exports: [InstallRewritesService],
})
export class InstallRewritesModule {}
