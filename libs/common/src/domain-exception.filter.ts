import { Catch, HttpException, HttpStatus, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { DomainError } from './domain-error.js';

export interface ErrorBody {
  code: string;
  message: string;
  details: Record<string, unknown>;
  requestId?: string;
}

const HTTP_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  422: 'UNPROCESSABLE',
  429: 'TOO_MANY_REQUESTS',
  503: 'UNAVAILABLE',
};

/** Maps any error to `{ code, message, details }` with its HTTP status. */
export function toErrorBody(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof DomainError) {
    return { status: error.status, body: { code: error.code, message: error.message, details: error.details } };
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    const response = error.getResponse();
    const message =
      typeof response === 'string'
        ? response
        : String((response as { message?: unknown }).message ?? error.message);
    return { status, body: { code: HTTP_CODES[status] ?? `HTTP_${status}`, message, details: extraDetails(response) } };
  }
  // body-parser's errors (malformed JSON, body too large) carry their status.
  const withStatus = error as { status?: unknown; type?: unknown; message?: unknown };
  if (typeof withStatus?.status === 'number' && withStatus.status >= 400 && withStatus.status < 500) {
    const status = withStatus.status;
    const message =
      status === 413
        ? 'The request body is too large'
        : withStatus.type === 'entity.parse.failed'
          ? 'The request body is not valid JSON'
          : String(withStatus.message ?? 'Bad request');
    return { status, body: { code: HTTP_CODES[status] ?? `HTTP_${status}`, message, details: {} } };
  }
  return {
    status: HttpStatus.INTERNAL_SERVER_ERROR,
    body: { code: 'INTERNAL_ERROR', message: 'Internal error; the request id is in the engine log', details: {} },
  };
}

/** What an HttpException carries beyond Nest's stock fields (e.g. the health report of a 503). */
function extraDetails(response: string | object): Record<string, unknown> {
  if (typeof response !== 'object' || response === null) return {};
  const details: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(response)) {
    if (key === 'message' || key === 'statusCode' || (key === 'error' && typeof value === 'string')) continue;
    details[key] = value;
  }
  return details;
}

@Catch()
export class DomainExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HTTP');

  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<{ id?: string }>();
    const response = http.getResponse<{
      headersSent: boolean;
      status(code: number): { json(body: unknown): void };
    }>();
    const { status, body } = toErrorBody(error);
    if (status >= 500) this.logger.error({ err: error, requestId: request.id }, 'request failed');
    if (response.headersSent) return;
    response.status(status).json({ ...body, requestId: request.id });
  }
}
