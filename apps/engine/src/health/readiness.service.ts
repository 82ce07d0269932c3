import { Injectable, Logger } from '@nestjs/common';
import { CatalogStatusService } from '@app/catalog';

/** An unauthenticated answer is reused this long: a flood of probes costs at most one catalog ping a second. */
const ANSWER_TTL_MS = 1_000;
/** Migrations, once all applied, are looked at again after this long. */
const MIGRATIONS_TTL_MS = 10_000;
const CHECK_TIMEOUT_MS = 3_000;

/**
 * Ready or not, for callers without a token (load balancers, probes): the
 * catalog answers and every migration this code knows has run. Nothing else
 * is read, and the answer is shared by concurrent callers.
 */
@Injectable()
export class ReadinessService {
  private readonly logger = new Logger('Health');
  private answer: { ready: boolean; at: number } | null = null;
  private pending: Promise<boolean> | null = null;
  private migrationsAppliedAt: number | null = null;

  constructor(private readonly catalog: CatalogStatusService) {}

  async ready(): Promise<boolean> {
    if (this.answer && Date.now() - this.answer.at < ANSWER_TTL_MS) return this.answer.ready;
    this.pending ??= this.check().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async check(): Promise<boolean> {
    let ready = false;
    try {
      await withTimeout(this.catalog.ping(), 'catalog ping');
      ready = await this.migrationsApplied();
      if (!ready) this.logger.warn('not ready: the catalog has pending migrations');
    } catch (error) {
      // The reason stays in the engine's log; an anonymous caller only learns "not ready".
      this.logger.warn({ err: error }, 'not ready: the catalog does not answer');
    }
    this.answer = { ready, at: Date.now() };
    return ready;
  }

  private async migrationsApplied(): Promise<boolean> {
    if (this.migrationsAppliedAt !== null && Date.now() - this.migrationsAppliedAt < MIGRATIONS_TTL_MS) return true;
    const pending = await withTimeout(this.catalog.pendingMigrations(), 'migrations');
    this.migrationsAppliedAt = pending.length === 0 ? Date.now() : null;
    return pending.length === 0;
  }
}

async function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
