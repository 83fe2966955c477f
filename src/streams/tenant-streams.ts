import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Counter, Gauge } from 'prom-client';
import { DataSource, In, MoreThan } from 'typeorm';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { Tenant } from '../auth/tenant.entity.js';
import { IntervalLoop } from '../common/interval-loop.js';
import type { FieldError } from '../common/errors.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { EventBus } from '../events/event-bus.js';
import { Metrics } from '../observability/metrics.js';
import { formatCursor } from '../tasks/event-cursor.js';
import { TaskEvent, type TaskEventType } from '../tasks/task-event.entity.js';
import { eventView } from '../tasks/task-events.controller.js';
import { matches, wantsAll, type StreamFilter } from './stream-filter.js';
import { StreamSlots } from './stream-slots.js';
import { textFrame } from './ws-frame.js';

// Without a signal the feed still reads the database at this pace: a lost pub/sub message delays, never loses.
const SAFETY_POLL_MS = 2_000;
// Open streams re-check their keys at this pace (from the database), so a revoked key's streams end within 5 s;
// and their backlogs, so a reader that stopped after a burst is dropped even when nothing more is sent; and renew
// their slots in the key's count across processes (StreamSlots).
const REVOCATION_CHECK_MS = 2_000;
const PAGE = 500;

/** A tenant's events after `after` in cursor order, optionally only some tasks and types. */
export function tenantEventsAfter(
  db: DataSource,
  tenantId: string,
  after: number,
  filter: StreamFilter | null,
  take: number,
): Promise<TaskEvent[]> {
  return db.getRepository(TaskEvent).find({
    where: {
      tenantId,
      cursor: MoreThan(after),
      ...(filter && filter.taskIds !== '*' ? { taskId: In([...filter.taskIds]) } : {}),
      ...(filter?.types ? { type: In([...filter.types]) } : {}),
    },
    order: { cursor: 'ASC' },
    take,
  });
}

/**
 * Why a starting point cannot be resumed from, if it is beyond the tenant's last cursor (its counter, which commits
 * with the events it numbers): a cursor of another tenant, or of a database since restored from an older backup.
 * Taken as it is, it would wait in silence and then skip every event up to it.
 */
export async function cursorBeyondLast(
  db: DataSource,
  tenantId: string,
  after: number | undefined,
  field: string,
): Promise<FieldError | undefined> {
  if (!after) return undefined;
  const tenant = await db.getRepository(Tenant).findOne({ where: { id: tenantId }, select: { eventCursor: true } });
  const last = tenant?.eventCursor ?? 0;
  if (after <= last) return undefined;
  return { field, message: `is beyond this tenant's last event (cursor ${formatCursor(last)})` };
}

/** One event as every stream sends it; its encodings are made once and shared by all the readers it goes to. */
export class StreamEvent {
  private sseText?: string;
  private wsBytes?: Buffer;
  readonly cursor: number;
  readonly taskId: string;
  readonly type: TaskEventType;
  readonly json: string;

  constructor(e: TaskEvent) {
    this.cursor = e.cursor;
    this.taskId = e.taskId;
    this.type = e.type;
    this.json = JSON.stringify(eventView(e));
  }

  get sse(): string {
    return (this.sseText ??= `id: ${formatCursor(this.cursor)}\nevent: ${this.type}\ndata: ${this.json}\n\n`);
  }

  /** The whole WebSocket frame of the event message, header included. */
  get ws(): Buffer {
    return (this.wsBytes ??= textFrame(
      Buffer.from(`{"type":"event","cursor":"${formatCursor(this.cursor)}","event":${this.json}}`),
    ));
  }
}

/**
 * Events that go to a connection in one write, in cursor order. The batch a feed read is shared by every
 * connection that wants all of it (a tenant's `*` followers): its bytes are joined once, and each connection gets
 * one socket write per batch, whatever its size.
 */
export class StreamBatch {
  private sseText?: string;
  private wsBytes?: Buffer;

  constructor(readonly events: readonly StreamEvent[]) {}

  get sse(): string {
    return (this.sseText ??= this.events.length === 1 ? this.events[0].sse : this.events.map((e) => e.sse).join(''));
  }

  get ws(): Buffer {
    return (this.wsBytes ??=
      this.events.length === 1 ? this.events[0].ws : Buffer.concat(this.events.map((e) => e.ws)));
  }
}

export type CloseReason = 'slow' | 'revoked' | 'shutdown';

/** A transport's side of one connection (SSE response, WebSocket). */
export interface StreamSink {
  send(batch: StreamBatch): void;
  /** Bytes written but not yet taken by the client. */
  buffered(): number;
  close(reason: CloseReason): void;
}

/** One connection's reading position and filter. `live` once caught up: from then on the tenant's feed feeds it. */
export class Subscription {
  live = false;
  closed = false;
  /** Bumped by a new starting point (WebSocket subscribe with `after`): a catch-up in flight for the old one stops. */
  generation = 0;

  constructor(
    readonly connection: StreamConnection,
    public filter: StreamFilter,
    /** Every event up to here was sent or did not match: the next one sent has a greater cursor. */
    public last: number,
  ) {}

  deliver(batch: StreamBatch): void {
    const { events } = batch;
    if (this.closed || events.length === 0) return;
    const wanted =
      events[0].cursor > this.last && wantsAll(this.filter)
        ? events
        : events.filter((e) => e.cursor > this.last && matches(this.filter, e));
    this.last = Math.max(this.last, events[events.length - 1].cursor);
    if (wanted.length) this.connection.send(wanted.length === events.length ? batch : new StreamBatch(wanted));
  }
}

export class StreamConnection {
  subscription?: Subscription;
  closed = false;

  constructor(
    readonly tenantId: string,
    readonly keyId: string,
    /** Its place in the key's count across processes (StreamSlots). */
    readonly slot: string,
    readonly transport: 'sse' | 'ws',
    private readonly sink: StreamSink,
    private readonly limit: number,
    private readonly onClose: (c: StreamConnection, reason: CloseReason | 'client') => void,
  ) {}

  send(batch: StreamBatch): void {
    if (this.closed) return;
    // A client that does not read leaves its bytes here: still past the bound when more is due, it is dropped,
    // not buffered further. (Checked before writing, so one burst bigger than the bound is not a reason.)
    if (this.sink.buffered() > this.limit) return this.close('slow');
    this.sink.send(batch);
  }

  /** Past the bound at a periodic check too: the last burst before a quiet spell does not escape it. */
  checkBacklog(): void {
    if (!this.closed && this.sink.buffered() > this.limit) this.close('slow');
  }

  /** Ends the connection from Herald's side (the sink says why to the client). */
  close(reason: CloseReason): void {
    if (this.closed) return;
    this.ended(reason);
    this.sink.close(reason);
  }

  /** The connection is gone (client left, or closed here). */
  ended(reason: CloseReason | 'client' = 'client'): void {
    if (this.closed) return;
    this.closed = true;
    if (this.subscription) this.subscription.closed = true;
    this.onClose(this, reason);
  }
}

/**
 * One tenant's events as they commit, read once per process for all of the tenant's live readers here: woken by
 * the event bus (a hint), read from the database (the truth), with a slow safety poll.
 */
class TenantFeed {
  /** Every event up to this cursor has been read and handed to the live subscriptions. */
  head = 0;
  readonly ready: Promise<void>;
  readonly subscriptions = new Set<Subscription>();
  // Reads never overlap; a signal during a read makes it read once more (IntervalLoop.kick).
  private readonly loop: IntervalLoop;
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly db: DataSource,
    bus: EventBus,
    readonly tenantId: string,
    private readonly logger: Logger,
  ) {
    this.loop = new IntervalLoop(`TenantFeed ${tenantId}`, SAFETY_POLL_MS, () => this.readAll(), logger);
    // Subscribe first, then read where the tenant is: a commit after that read is signalled to us.
    const sub = bus.subscribeTenant(tenantId, () => this.read());
    this.unsubscribe = sub.unsubscribe;
    this.ready = sub.ready.then(async () => {
      const row = await db
        .getRepository(TaskEvent)
        .createQueryBuilder('e')
        .select('MAX(e.event_cursor)', 'max')
        .where('e.tenant_id = :tenantId', { tenantId })
        .getRawOne<{ max: string | number | null }>();
      this.head = Math.max(this.head, Number(row?.max ?? 0));
    });
    this.loop.start();
  }

  /** Reads what committed since `head`; signals during a read make it read once more, never twice at once. */
  read(): void {
    if (!this.stopped) void this.loop.kick();
  }

  private async readAll(): Promise<void> {
    await this.ready.catch(() => undefined);
    for (;;) {
      const rows = await tenantEventsAfter(this.db, this.tenantId, this.head, null, PAGE).catch((err: Error) => {
        this.logger.warn(`reading the events of tenant ${this.tenantId} failed: ${err.message}`);
        return [];
      });
      if (rows.length === 0 || this.stopped) return;
      const batch = new StreamBatch(rows.map((r) => new StreamEvent(r)));
      this.head = batch.events[batch.events.length - 1].cursor;
      for (const s of this.subscriptions) if (s.live) s.deliver(batch);
      if (rows.length < PAGE) return;
    }
  }

  stop(): void {
    this.stopped = true;
    void this.loop.stop();
    this.unsubscribe();
  }
}

/**
 * Tenant-wide event streams for the SSE and WebSocket routes: connections per key (limited), one feed per tenant,
 * catch-up from the database on (re)subscribe, revocation checks and shutdown.
 */
@Injectable()
export class TenantStreams implements BeforeApplicationShutdown {
  private readonly logger = new Logger('TenantStreams');
  private readonly feeds = new Map<string, TenantFeed>();
  private readonly byKey = new Map<string, Set<StreamConnection>>();
  private readonly revocation: IntervalLoop;
  private readonly dropped: Counter;
  private shuttingDown = false;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly bus: EventBus,
    private readonly keys: ApiKeysService,
    private readonly slots: StreamSlots,
    metrics: Metrics,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.dropped = new Counter({
      name: 'herald_stream_closed_total',
      help: 'Tenant streams closed by Herald, by reason (slow, revoked, shutdown)',
      labelNames: ['reason'],
      registers: [metrics.registry],
    });
    const connections = (): StreamConnection[] => [...this.byKey.values()].flatMap((s) => [...s]);
    new Gauge({
      name: 'herald_stream_connections',
      help: 'Open tenant streams in this process, by transport',
      labelNames: ['transport'],
      registers: [metrics.registry],
      collect() {
        const open = connections();
        for (const transport of ['sse', 'ws'])
          this.set({ transport }, open.filter((c) => c.transport === transport).length);
      },
    });
    this.revocation = new IntervalLoop('StreamRevocation', REVOCATION_CHECK_MS, () => this.closeRevoked());
    this.revocation.start();
  }

  /** Whether the key may open one more stream in this process. */
  private canOpen(keyId: string): boolean {
    return !this.shuttingDown && (this.byKey.get(keyId)?.size ?? 0) < this.config.streams.maxConnectionsPerKey;
  }

  /**
   * Registers a connection; undefined when the key is at its limit (STREAM_MAX_CONNECTIONS_PER_KEY), in this
   * process or, counted in Redis, across all API processes.
   */
  async open(
    tenantId: string,
    keyId: string,
    transport: 'sse' | 'ws',
    sink: StreamSink,
  ): Promise<StreamConnection | undefined> {
    if (!this.canOpen(keyId)) return undefined;
    const slot = await this.slots.take(keyId);
    if (!slot || !this.canOpen(keyId)) {
      if (slot) this.slots.release(keyId, slot);
      return undefined;
    }
    const connection = new StreamConnection(
      tenantId,
      keyId,
      slot,
      transport,
      sink,
      this.config.streams.bufferLimitBytes,
      (c, reason) => this.forget(c, reason),
    );
    let set = this.byKey.get(keyId);
    if (!set) this.byKey.set(keyId, (set = new Set()));
    set.add(connection);
    return connection;
  }

  /**
   * Starts (or restarts, with a new filter or starting point) the connection's subscription. `after` undefined:
   * from now on (or, on a restart, where it was). Answers the cursor it starts after.
   */
  async subscribe(connection: StreamConnection, filter: StreamFilter, after: number | undefined): Promise<number> {
    let feed = this.feedOf(connection.tenantId);
    await feed.ready;
    // The feed may have stopped while we waited (its last reader left): take the tenant's current one.
    while (this.feeds.get(connection.tenantId) !== feed) {
      feed = this.feedOf(connection.tenantId);
      await feed.ready;
    }
    if (connection.closed) return after ?? feed.head;
    let sub = connection.subscription;
    if (!sub) {
      sub = connection.subscription = new Subscription(connection, filter, after ?? feed.head);
      feed.subscriptions.add(sub);
      // From now on: already where the feed is.
      if (after === undefined) sub.live = true;
    } else {
      sub.filter = filter;
      // Same starting point, new filter: a live subscription stays live, a catch-up in flight reads with it.
      // A connection sends each event once, in cursor order: an `after` below what it sent already replays from there.
      if (after === undefined || after <= sub.last) return sub.last;
      sub.last = after;
    }
    if (after !== undefined) {
      sub.generation++;
      sub.live = false;
      void this.catchUp(feed, sub);
    }
    return sub.last;
  }

  /**
   * Reads from the database from the subscription's cursor until it reaches the feed's head, then hands it to the
   * feed. The feed only moves on synchronously with its deliveries, so the switch leaves no gap; and each
   * subscription sends only cursors above its last, so nothing is sent twice.
   */
  private async catchUp(feed: TenantFeed, sub: Subscription): Promise<void> {
    const generation = sub.generation;
    while (!sub.closed && sub.generation === generation) {
      // Everything up to the feed's head has committed: a short page means the reader has seen all of it.
      const horizon = feed.head;
      let rows: TaskEvent[];
      try {
        rows = await tenantEventsAfter(this.db, feed.tenantId, sub.last, sub.filter, PAGE);
      } catch (err) {
        this.logger.warn(`catch-up read failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (sub.closed || sub.generation !== generation) return;
      if (rows.length) sub.deliver(new StreamBatch(rows.map((r) => new StreamEvent(r))));
      if (rows.length < PAGE) {
        sub.last = Math.max(sub.last, horizon);
        if (sub.last >= feed.head) {
          sub.live = true;
          return;
        }
      }
    }
  }

  private feedOf(tenantId: string): TenantFeed {
    let feed = this.feeds.get(tenantId);
    if (!feed) this.feeds.set(tenantId, (feed = new TenantFeed(this.db, this.bus, tenantId, this.logger)));
    return feed;
  }

  private forget(connection: StreamConnection, reason: CloseReason | 'client'): void {
    if (reason !== 'client') this.dropped.inc({ reason });
    this.slots.release(connection.keyId, connection.slot);
    const set = this.byKey.get(connection.keyId);
    set?.delete(connection);
    if (set?.size === 0) this.byKey.delete(connection.keyId);
    const feed = this.feeds.get(connection.tenantId);
    if (feed && connection.subscription) {
      feed.subscriptions.delete(connection.subscription);
      if (feed.subscriptions.size === 0) {
        feed.stop();
        this.feeds.delete(connection.tenantId);
      }
    }
  }

  private async closeRevoked(): Promise<void> {
    if (this.byKey.size === 0) return;
    for (const set of [...this.byKey.values()]) for (const c of [...set]) c.checkBacklog();
    this.slots.renew(
      [...this.byKey.values()].flatMap((set) => [...set].map((c) => ({ keyId: c.keyId, slot: c.slot }))),
    );
    const keyIds = [...this.byKey.keys()];
    const valid = await this.keys.stillValid(keyIds).catch(() => undefined);
    if (!valid) return;
    for (const keyId of keyIds) {
      if (valid.has(keyId)) continue;
      for (const c of [...(this.byKey.get(keyId) ?? [])]) c.close('revoked');
    }
  }

  /** Streams stay open for hours: end them so the HTTP server can close. */
  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
    void this.revocation.stop();
    for (const set of [...this.byKey.values()]) for (const c of [...set]) c.close('shutdown');
    for (const feed of this.feeds.values()) feed.stop();
    this.feeds.clear();
  }
}
