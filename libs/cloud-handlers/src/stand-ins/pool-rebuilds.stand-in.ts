import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { HandlerConfig } from '@app/catalog';

/**
 * STAND-IN, to be deleted at merge: helper A's `PoolRebuilds` (exported
 * from @app/webserver, libs/webserver/src/php-pools) is not on this branch
 * yet. Same names and signatures as the design note; every user imports it
 * from this file only, so the merge swaps one import per file
 * (`import { PoolRebuilds } from '@app/webserver'`) and drops this provider.
 *
 * It declares no job kind (A's `php.rebuild` is the real one): `request`
 * only bumps the handler's wanted generation, and `poolState` says `live`
 * when the handler's applied generation caught up, which nothing here makes
 * happen. Callers only ask about managed handlers.
 */
export type PoolState =
  | { state: 'live' }
  | { state: 'pending' }
  | { state: 'quarantined'; reason: string }
  | { state: 'failed'; reason: string }
  | { state: 'not-served' };

@Injectable()
export class PoolRebuilds {
  constructor(private readonly dataSource: DataSource) {}

  async request(serverIds: number[], manager?: EntityManager): Promise<void> {
    const m = manager ?? this.dataSource.manager;
    for (const serverId of [...new Set(serverIds)].sort((a, b) => a - b)) {
      if (!(await m.findOneBy(HandlerConfig, { serverId }))) await m.insert(HandlerConfig, { serverId });
      await m.createQueryBuilder().update(HandlerConfig).set({ wantedGeneration: () => 'wanted_generation + 1' }).where('server_id = :serverId', { serverId }).execute();
    }
  }

  async poolState(_installId: number, serverId: number): Promise<PoolState> {
    const row = await this.dataSource.manager.findOneBy(HandlerConfig, { serverId });
    if (row?.lastError) return { state: 'failed', reason: row.lastError };
    return row && row.appliedGeneration >= row.wantedGeneration ? { state: 'live' } : { state: 'pending' };
  }
}
