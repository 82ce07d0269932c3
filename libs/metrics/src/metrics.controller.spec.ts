import { ForbiddenException, UnauthorizedException } from '@nestjs/common';
import type { EngineConfig } from '@app/config';
import { isLoopback, MetricsController } from './metrics.controller.js';
import { Metrics } from './metrics.service.js';

describe('who may scrape /metrics', () => {
  const controller = (metricsToken: string | null) => new MetricsController(new Metrics(), { metricsToken } as EngineConfig);
  const req = (remoteAddress: string, authorization?: string) => ({ socket: { remoteAddress }, headers: { authorization } });
  const res = { type: () => undefined };

  it('knows the loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a)).toBe(true);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', 'fe80::1', '', undefined]) expect(isLoopback(a)).toBe(false);
  });

  it('answers the loopback without a token, and nobody else when no token is set', async () => {
    await expect(controller(null).scrape(req('127.0.0.1'), res)).resolves.toContain('shop_engine_');
    await expect(controller(null).scrape(req('192.0.2.7'), res)).rejects.toBeInstanceOf(ForbiddenException);
    await expect(controller(null).scrape(req('192.0.2.7', 'Bearer anything-goes-here'), res)).rejects.toBeInstanceOf(ForbiddenException);
  });

  it('answers elsewhere only with the token', async () => {
    const token = 'a-long-enough-metrics-token';
    await expect(controller(token).scrape(req('192.0.2.7', `Bearer ${token}`), res)).resolves.toContain('shop_engine_');
    await expect(controller(token).scrape(req('192.0.2.7'), res)).rejects.toBeInstanceOf(UnauthorizedException);
    await expect(controller(token).scrape(req('192.0.2.7', `Bearer ${token}x`), res)).rejects.toBeInstanceOf(UnauthorizedException);
  });
});
