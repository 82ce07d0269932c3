import { BadRequestException, NotFoundException } from '@nestjs/common';
import { DomainError, NotFoundError, ValidationFailedError } from './domain-error.js';
import { toErrorBody } from './domain-exception.filter.js';

describe('toErrorBody', () => {
  it('keeps a domain error code, message, status and details', () => {
    const error = new DomainError('IP_POOL_EXHAUSTED', 'No free IP on dispatch1', 409, { pool: 'dispatch1' });
    expect(toErrorBody(error)).toEqual({
      status: 409,
      body: { code: 'IP_POOL_EXHAUSTED', message: 'No free IP on dispatch1', details: { pool: 'dispatch1' } },
    });
  });

  it('lists every invalid field', () => {
    const { status, body } = toErrorBody(
      new ValidationFailedError([
        { field: 'sites.0.hostname', problems: ['must be a hostname'] },
        { field: 'license', problems: ['must be free or paid'] },
      ]),
    );
    expect(status).toBe(400);
    expect(body.code).toBe('VALIDATION_FAILED');
    expect(body.message).toContain('sites.0.hostname: must be a hostname');
    expect(body.message).toContain('license: must be free or paid');
  });

  it('gives Nest HTTP exceptions a stable code', () => {
    expect(toErrorBody(new NotFoundException('Cannot GET /nope')).body).toMatchObject({
      code: 'NOT_FOUND',
      message: 'Cannot GET /nope',
    });
    expect(toErrorBody(new NotFoundError('Install', 7)).body.message).toBe('Install 7 does not exist');
    expect(toErrorBody(new BadRequestException()).status).toBe(400);
  });

  it('maps body-parser errors and hides internal ones', () => {
    expect(toErrorBody({ status: 413, type: 'entity.too.large', message: 'request entity too large' })).toMatchObject({
      status: 413,
      body: { code: 'PAYLOAD_TOO_LARGE' },
    });
    const internal = toErrorBody(new Error('connect ECONNREFUSED 10.0.0.5:3306 password=hunter2'));
    expect(internal.status).toBe(500);
    expect(internal.body.code).toBe('INTERNAL_ERROR');
    expect(JSON.stringify(internal.body)).not.toContain('hunter2');
  });
});
