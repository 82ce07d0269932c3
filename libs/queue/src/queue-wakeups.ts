import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { sqlDialect, type SqlDialect } from './sql-dialect.js';

/** What a wake-up datagram says; anything else is ignored. */
const WAKE = Buffer.from('queue-wake');
/** A listener refreshes its row this often; senders skip rows older than LISTENER_STALE_MS (a worker that died). */
const REFRESH_MS = 5_000;
const LISTENER_STALE_MS = 30_000;
/** Senders read the listeners again after this long (a worker started since is woken from then on; it polls meanwhile). */
const SENDER_CACHE_MS = 2_000;
/** A flood of datagrams makes at most one extra claim per this long. */
const MIN_WAKE_GAP_MS = 10;

interface Listening {
  owner: string;
  socket: Socket;
  timer: NodeJS.Timeout;
}

/**
 * Cross-process wake-ups for the queue: a worker listens on a UDP port
 * (WORKER_WAKE_ADDRESS) and records it in `queue_listeners`; any engine
 * process that enqueues (the API taking an order, the CLI, another worker
 * starting a saga's next job) sends one datagram to each listener, which
 * claims at once instead of at its next poll. Best effort both ways: a lost
 * datagram costs the poll interval, nothing more.
 */
@Injectable()
export class QueueWakeups implements OnApplicationShutdown {
  private readonly logger = new Logger('QueueWakeups');
  private readonly sql: SqlDialect;
  private listening: Listening | null = null;
  private readonly senders = new Map<'udp4' | 'udp6', Socket>();
  private targets: { host: string; port: number; owner: string }[] = [];
  private readAt = 0;
  private reading: Promise<void> | null = null;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.sql = sqlDialect(dataSource);
  }

  /** Listens for wake-ups on `address` (a port the system picks), recorded for `owner`; `wake` is called for each (at most one per 10 ms). */
  async listen(owner: string, address: string, wake: () => void): Promise<void> {
    if (isIP(address) === 0) throw new Error(`WORKER_WAKE_ADDRESS must be an IP address (got ${JSON.stringify(address)})`);
    const socket = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    let last = 0;
    socket.on('message', (message) => {
      const now = Date.now();
      if (!message.equals(WAKE) || now - last < MIN_WAKE_GAP_MS) return;
      last = now;
      wake();
    });
    socket.on('error', (error) => this.logger.warn(`wake-up socket: ${error.message}`));
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => {
        socket.close();
        reject(error);
      };
      socket.once('error', failed);
      socket.bind(0, address, () => {
        socket.off('error', failed);
        resolve();
      });
    });
    socket.unref();
    const port = socket.address().port;
    try {
      await this.dataSource.query('DELETE FROM queue_listeners WHERE owner = ?', [owner]);
      await this.dataSource.query(`INSERT INTO queue_listeners (owner, host, port, seen_at) VALUES (?, ?, ?, ${this.sql.now})`, [owner, address, port]);
    } catch (error) {
      socket.close();
      throw error;
    }
    const timer = setInterval(() => {
      this.dataSource
        .query(`UPDATE queue_listeners SET seen_at = ${this.sql.now} WHERE owner = ?`, [owner])
        .catch((error: Error) => this.logger.warn(`refreshing the wake-up listener failed: ${error.message}`));
    }, REFRESH_MS);
    timer.unref();
    this.listening = { owner, socket, timer };
    this.logger.log(`worker ${owner} takes wake-ups on ${address}:${port}`);
  }

  /** Stops listening and removes the listener's row (a catalog already closed leaves it to go stale). */
  async stopListening(): Promise<void> {
    const listening = this.listening;
    this.listening = null;
    if (!listening) return;
    clearInterval(listening.timer);
    listening.socket.close();
    if (!this.dataSource.isInitialized) return;
    await this.dataSource
      .query('DELETE FROM queue_listeners WHERE owner = ?', [listening.owner])
      .catch((error: Error) => this.logger.warn(`removing the wake-up listener of ${listening.owner} failed (its row goes stale in 30 s): ${error.message}`));
  }

  async onApplicationShutdown(): Promise<void> {
    for (const socket of this.senders.values()) socket.close();
    this.senders.clear();
    await this.stopListening();
  }

  /** Wakes the workers of other processes (after jobs were enqueued and committed); never waits, never throws. */
  send(): void {
    if (Date.now() - this.readAt < SENDER_CACHE_MS) return this.sendTo(this.targets);
    // The listeners known so far now; read again, and the ones found go too (once each).
    const known = new Set(this.targets.map((t) => t.owner));
    this.sendTo(this.targets);
    this.reading ??= this.read()
      .then(() => this.sendTo(this.targets.filter((t) => !known.has(t.owner))))
      .catch((error: Error) => this.logger.warn(`reading the wake-up listeners failed: ${error.message}`))
      .finally(() => (this.reading = null));
  }

  private async read(): Promise<void> {
    if (!this.dataSource.isInitialized) return;
    const since = this.sql.nowPlus(-LISTENER_STALE_MS);
    const rows = (await this.dataSource.query(`SELECT owner, host, port FROM queue_listeners WHERE seen_at > ${since.sql}`, [since.param])) as { owner: string; host: string; port: number }[];
    const own = this.listening?.owner;
    this.targets = rows.filter((r) => r.owner !== own && isIP(r.host) !== 0).map((r) => ({ owner: r.owner, host: r.host, port: Number(r.port) }));
    this.readAt = Date.now();
  }

  private sendTo(targets: readonly { host: string; port: number }[]): void {
    for (const target of targets) {
      this.socketFor(isIP(target.host) === 6 ? 'udp6' : 'udp4').send(WAKE, target.port, target.host, (error) => {
        // A datagram that cannot go costs that worker its poll interval, nothing more.
        if (error) this.logger.debug(`wake-up to ${target.host}:${target.port} not sent: ${error.message}`);
      });
    }
  }

  /** One unbound socket per address family, opened on first use. */
  private socketFor(type: 'udp4' | 'udp6'): Socket {
    let socket = this.senders.get(type);
    if (!socket) {
      socket = createSocket(type);
      // A datagram nobody takes (a worker gone) may come back as an error: the worker is skipped once its row goes stale.
      socket.on('error', (error) => this.logger.debug(`wake-up socket: ${error.message}`));
      socket.unref();
      this.senders.set(type, socket);
    }
    return socket;
  }
}
