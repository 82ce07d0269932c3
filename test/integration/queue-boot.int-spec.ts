import { Injectable } from '@nestjs/common';
import { defineJobKind, JobHandler } from '@app/queue';
import { createTestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';

// Declared kinds are per module registry, so this file's mistakes stay in this file.
defineJobKind('test.orphan');
const TWICE = defineJobKind('test.twice');

@Injectable()
class First {
  @JobHandler(TWICE)
  async run(): Promise<void> {}
}

@Injectable()
class Second {
  @JobHandler(TWICE)
  async again(): Promise<void> {}
}

describe('worker boot', () => {
  it('refuses to start when a kind has no handler or two', async () => {
    const catalog = await createTestCatalog('sqlite', 'boot');
    try {
      await expect(startQueueContext(catalog.url, [First, Second])).rejects.toThrow(
        /job kind "test.twice" has two handlers: First.run and Second.again[\s\S]*job kind "test.orphan" has no handler/,
      );
      // Producers (no worker role) do not need the handlers.
      const producer = await startQueueContext(catalog.url, [], null);
      await producer.close();
    } finally {
      await catalog.drop();
    }
  });
});
