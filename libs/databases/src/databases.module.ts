import { Module } from '@nestjs/common';
import { TenantDatabases } from './tenant-databases.service.js';

/** Tenant databases on the inventory's database servers. */
@Module({ providers: [TenantDatabases], exports: [TenantDatabases] })
export class DatabasesModule {}
