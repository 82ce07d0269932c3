/**
 * An error a user can act on: a stable machine code (`IP_POOL_EXHAUSTED`),
 * a message for a support person, the HTTP status it maps to, and details.
 * One exception filter turns these into `{ code, message, details }`.
 */
export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string | number) {
    super('NOT_FOUND', `${what} ${id} does not exist`, 404, { what, id });
  }
}

export interface FieldProblem {
  field: string;
  problems: string[];
}

export class ValidationFailedError extends DomainError {
  constructor(readonly fields: FieldProblem[]) {
    super(
      'VALIDATION_FAILED',
      'The request is invalid: ' +
        fields.map((f) => `${f.field}: ${f.problems.join('; ')}`).join(' | '),
      400,
      { fields },
    );
  }
}
