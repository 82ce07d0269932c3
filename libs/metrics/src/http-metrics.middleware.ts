import { Injectable, type NestMiddleware } from '@nestjs/common';
import { Metrics } from './metrics.service.js';

interface HttpRequest {
  method: string;
  baseUrl?: string;
  route?: { path?: unknown };
}

interface HttpResponse {
  statusCode: number;
  once(event: 'finish' | 'close', listener: () => void): unknown;
}

/**
 * Counts every answered request with its latency, labelled by the route's
 * pattern (`/v1/installs/:id`), never the raw path: ids and hostnames would
 * make a series per install. A request no route matched is `unmatched`.
 */
@Injectable()
export class HttpMetricsMiddleware implements NestMiddleware {
  constructor(private readonly metrics: Metrics) {}

  use(req: HttpRequest, res: HttpResponse, next: () => void): void {
    const started = process.hrtime.bigint();
    let observed = false;
    const observe = () => {
      if (observed) return;
      observed = true;
      const path = typeof req.route?.path === 'string' ? `${req.baseUrl ?? ''}${req.route.path}` : 'unmatched';
      const labels = { method: req.method, route: path, status: String(res.statusCode) };
      this.metrics.httpRequests.inc(labels);
      this.metrics.httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    };
    res.once('finish', observe);
    res.once('close', observe);
    next();
  }
}
