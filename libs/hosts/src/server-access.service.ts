import { Inject, Injectable, Optional, type OnModuleDestroy } from '@nestjs/common';
import { Metrics } from '@app/metrics';
import type { Server } from '@app/catalog';
import { ENGINE_CONFIG, type EngineConfig } from '@app/config';
import type { HostExecutor } from './host-executor.port.js';
import { LocalExecutor } from './local-executor.adapter.js';
import { SshExecutor } from './ssh-executor.adapter.js';
import { syncTree, type SyncOptions } from './sync-tree.js';

/** The executor for a server of the inventory, by its transport. */
@Injectable()
export class ServerAccess implements OnModuleDestroy {
  private readonly local = new LocalExecutor();
  private readonly ssh: SshExecutor;

  constructor(@Inject(ENGINE_CONFIG) config: EngineConfig, @Optional() metrics?: Metrics) {
    this.ssh = new SshExecutor(config.sshKeyPath);
    if (metrics) {
      for (const executor of [this.local, this.ssh]) {
        executor.observer = (server, seconds, outcome) => metrics.commandDuration.observe({ server, transport: executor.transport, outcome }, seconds);
      }
      metrics.addCollector(() => metrics.sshConnections.set(this.ssh.pooledConnections));
    }
  }

  executorFor(server: Pick<Server, 'transport'>): HostExecutor {
    return server.transport === 'local' ? this.local : this.ssh;
  }

  /** Makes `path` on `to` a copy of `path` on `from` (see syncTree). */
  sync(from: Server, to: Server, path: string, options?: SyncOptions): Promise<void> {
    return syncTree({ executor: this.executorFor(from), server: from }, { executor: this.executorFor(to), server: to }, path, options);
  }

  onModuleDestroy(): void {
    this.ssh.onModuleDestroy();
  }
}
