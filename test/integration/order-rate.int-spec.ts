import type { INestApplicationContext, Type } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ApiTokensService, AuthModule, OrderRateRepository } from '@app/auth';
import { ApiToken } from '@app/catalog';
import { CATALOG_KINDS, createTestCatalog, type TestCatalog } from '../support/catalog.js';
import { startQueueContext } from '../support/queue-context.js';

/** The order hook's per-token count under concurrent orders, on both catalog kinds. */
describe.each(CATALOG_KINDS)('order rate counter (%s)', (kind) => {
  let catalog: TestCatalog;
  let app: INestApplicationContext;
  let rates: OrderRateRepository;

  beforeAll(async () => {
    catalog = await createTestCatalog(kind, 'order_rate');
    app = await startQueueContext(catalog.url, [], null, [AuthModule.forCli()] as unknown as Type[]);
    rates = new OrderRateRepository(app.get(DataSource).getRepository(ApiToken));
  });
  afterAll(async () => {
    await app?.close();
    await catalog?.drop();
  });

  const token = async () => (await app.get(ApiTokensService).issue(`storefront-${Math.random().toString(36).slice(2, 8)}`, ['orders'], { actor: 'test', via: 'cli' })).record.id;
  const takeAtOnce = (id: number, window: number, limit: number, n: number) => Promise.all(Array.from({ length: n }, () => rates.take(id, window, limit)));

  it('counts every one of many orders arriving at once: below the limit all pass, above it exactly the limit', async () => {
    const below = await token();
    expect((await takeAtOnce(below, 1000, 60, 50)).filter(Boolean)).toHaveLength(50);
    const above = await token();
    expect((await takeAtOnce(above, 1000, 60, 90)).filter(Boolean)).toHaveLength(60);
    expect(await rates.take(above, 1000, 60)).toBe(false);
  });

  it('opens a new count in the next minute, and an order of the past minute arriving late takes from the current count', async () => {
    const id = await token();
    expect((await takeAtOnce(id, 2000, 5, 5)).filter(Boolean)).toHaveLength(5);
    expect(await rates.take(id, 2000, 5)).toBe(false);
    expect((await takeAtOnce(id, 2001, 5, 3)).filter(Boolean)).toHaveLength(3);
    // A request that read the clock before the minute turned must not reset the new minute's count to one.
    expect(await rates.take(id, 2000, 5)).toBe(true);
    expect((await takeAtOnce(id, 2001, 5, 3)).filter(Boolean)).toHaveLength(1);
  });

  it('refuses none of the orders in flight while the minute turns (each under the limit)', async () => {
    const id = await token();
    expect(await rates.take(id, 3000, 60)).toBe(true);
    // Half read the clock before the turn, half after, all at once: the ones of the old minute must not find it gone.
    const taken = await Promise.all(Array.from({ length: 40 }, (_, i) => rates.take(id, i % 2 === 0 ? 3000 : 3001, 60)));
    expect(taken.filter((t) => !t)).toHaveLength(0);
  });
});
