import { Injectable } from '@nestjs/common';
import { RecurringTask, type TaskRunContext } from '@app/queue';
import { SearchIndexes } from './search-indexes.service.js';

/** The seed's sphinx cron: each search server's sphinx.conf from the catalog, and the changed indexes rebuilt, every minute. */
@Injectable()
export class SearchIndexConfigTask extends RecurringTask {
  constructor(private readonly indexes: SearchIndexes) {
    super({ name: 'SearchIndexConfig', everyMs: 60_000, failure: 'the search index config failed' });
  }

  protected async tick(context: TaskRunContext): Promise<void> {
    await this.indexes.apply({ log: (line) => context.log(line) });
  }
}
