import { Global, Module, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { CatalogGauges } from './catalog-gauges.js';
import { HttpMetricsMiddleware } from './http-metrics.middleware.js';
import { MetricsController } from './metrics.controller.js';
import { Metrics } from './metrics.service.js';

/**
 * Prometheus metrics (`GET /metrics` on engines with the api role). Global:
 * any library may inject `Metrics` (optionally) and observe.
 */
@Global()
@Module({})
export class MetricsModule implements NestModule {
  static forRoot(options: { http: boolean }): DynamicModule {
    return {
      module: MetricsModule,
      controllers: options.http ? [MetricsController] : [],
      providers: [Metrics, CatalogGauges, HttpMetricsMiddleware],
      exports: [Metrics],
    };
  }

  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(HttpMetricsMiddleware).forRoutes('{*splat}');
  }
}
