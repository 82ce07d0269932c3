import { Module } from '@nestjs/common';
import { DatabasesModule } from '@app/databases';
import { SearchIndexConfigTask } from './search-index-config.task.js';
import { SearchIndexes } from './search-indexes.service.js';

/** Search indexes (Sphinx) of the installs whose manifest asks for one, on the search servers. */
@Module({
  imports: [DatabasesModule],
  providers: [SearchIndexes, SearchIndexConfigTask],
  exports: [SearchIndexes],
})
export class SearchModule {}
