import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { DispatcherConfig, Server } from '@app/catalog';

/** Dispatchers whose last nginx rebuild failed (nginx not running, a config no install explains), as /health reports them. */
@Injectable()
export class FailingDispatchersRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async list(): Promise<{ hostname: string; error: string }[]> {
    return this.dataSource
      .getRepository(DispatcherConfig)
      .createQueryBuilder('c')
      .innerJoin(Server, 's', 's.id = c.serverId')
      .select(['s.hostname AS hostname', 'c.lastError AS error'])
      .where('c.lastError IS NOT NULL')
      .andWhere("s.state <> 'down'")
      .orderBy('s.hostname', 'ASC')
      .getRawMany<{ hostname: string; error: string }>();
  }
}
