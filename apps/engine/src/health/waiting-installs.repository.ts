import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, IsNull, type FindOptionsWhere } from 'typeorm';
import { Install } from '@app/catalog';

const WAITING: FindOptionsWhere<Install> = { status: 'preparing', sharedCodeGroupId: IsNull() };

/** The installs accepted while no code group had room, as /health reports them: a count and the oldest few. */
@Injectable()
export class WaitingInstallsRepository {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  async summary(sampleSize: number): Promise<{ count: number; sample: Install[] }> {
    const installs = this.dataSource.getRepository(Install);
    const count = await installs.count({ where: WAITING });
    const sample = count === 0 ? [] : await installs.find({ where: WAITING, order: { id: 'ASC' }, take: sampleSize });
    return { count, sample };
  }
}
