import { Global, Module, type DynamicModule } from '@nestjs/common';
import { InventoryService } from './inventory.service.js';
import { ServerAccess } from './server-access.service.js';
import { ServerCheckService } from './server-check.service.js';
import { ServersController } from './servers.controller.js';

/** Servers: the inventory and the executors that act on them. */
@Global()
@Module({})
export class HostsModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: HostsModule,
      controllers: options.http ? [ServersController] : [],
      providers: [ServerAccess, ServerCheckService, InventoryService],
      exports: [ServerAccess, ServerCheckService, InventoryService],
    };
  }
}
