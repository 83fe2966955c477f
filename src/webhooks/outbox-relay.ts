import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, IsNull, LessThan } from 'typeorm';
import { InFlight } from '../common/in-flight.js';
import { IntervalLoop } from '../common/interval-loop.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { Sql } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { Delivery, REQUEST_TARGET } from './delivery.entity.js';
import { HandedOver, OutboxSignal } from './outbox-signal.js';
import { batchJobId, BatchesDue, WebhookQueue } from './webhook.queue.js';

const BATCH = 500;
const MAX_ROUNDS = 40;
// Another process's commits are picked up within this long; this process's own are relayed at once (kick).
const POLL_MS = 250;
// Free room in this process's webhook worker that is worth a relay round (a SELECT and an UPDATE) to fill.
const ROOM_WORTH_A_ROUND = 32;
// Events in batches that one relay round marks dispatched for their endpoints (see markEndpointsDispatched): a
// round holds SQLite's one connection ~50 ms for this many on this machine.
const ENDPOINT_MARK_ROWS = 5_000;

/**
 * Moves committed, undispatched deliveries on from the database, in batches: to this process's webhook worker as it
 * has room, else into the BullMQ `webhooks` queue (see relay). Safe in many processes at once: the job id is the
 * delivery id, so a second add is a no-op, and a delivery is sent only by whoever claims it.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('OutboxRelay');
  private readonly loop: IntervalLoop;
  private readonly handing = new InFlight();
  private readonly sql: Sql;
  // The last round left due deliveries for this process's webhook worker, which had no room then.
  private waitingForRoom = false;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly queue: WebhookQueue,
    private readonly signal: OutboxSignal,
    @Inject(CONFIG) config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('OutboxRelay', Math.min(POLL_MS, config.sweepIntervalMs), () => this.relay());
    signal.onKick(() => void this.loop.kick());
    this.sql = new Sql(db);
    signal.onQueue((deliveries) => this.handing.track(this.handOver(deliveries)));
    signal.onQueueBatches((due) => this.handing.track(this.handOverBatchJobs(due)));
    signal.onRoomFreed(() => this.roomFreed());
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
    await this.handing.settled();
  }

  /**
   * Deliveries this process has just committed as dispatched go into the queue at once: no relay round, no poll.
   * Should Redis refuse them, they are marked undispatched again for the relay; should that fail too, the sweeper
   * finds them (due, dispatched, not in Redis) and hands them back.
   */
  async handOver(deliveries: HandedOver[]): Promise<void> {
    try {
      await this.queue.dispatch(deliveries);
    } catch (err) {
      this.logger.warn(
        `could not queue ${deliveries.length} new deliveries, the relay will: ${(err as Error).message}`,
      );
      const ids = deliveries.map((d) => d.id);
      await this.uow
        .run((em) => em.update(Delivery, { id: In(ids), status: 'pending' }, { dispatchedAt: null }))
        .catch((e: Error) =>
          this.logger.warn(`could not mark them undispatched either, the sweeper will: ${e.message}`),
        );
    }
  }

  /** Endpoints' batch jobs into the queue. Should Redis refuse, the sweeper finds their events (no job) and hands them back. */
  async handOverBatchJobs(due: BatchesDue[]): Promise<void> {
    await this.queue
      .dispatchBatches(due)
      .catch((err: Error) =>
        this.logger.warn(`could not queue the batches of ${due.length} endpoints, the sweeper will: ${err.message}`),
      );
  }

  /**
   * Moves undispatched deliveries on, in batches. Where this process runs a webhook worker, those due now are sent
   * by it, as many as it has room for (a job's add, pick-up and finish in Redis cost about a fifth of a webhook's
   * CPU); due ones beyond its room stay undispatched until the worker frees room and calls for the next round
   * (`roomFreed`), or another process takes them. What is not due yet goes into the queue with its delay, and a
   * process without a webhook worker (ROLE=api) queues everything.
   */
  async relay(): Promise<number> {
    let relayed = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const found = await this.undispatched();
      if (found.length === 0) break;
      // Deliveries that go in their endpoint's batches are handed on once per endpoint, not one by one.
      const batch = found.filter((d) => !d.inBatches);
      const { here, queued, leftBehind } = splitForHere(batch, this.signal.roomHere(), Date.now());
      if (queued.length) await this.queue.dispatch(queued);
      const batched = found.filter((d) => d.inBatches);
      const mine = await this.markDispatched([...here, ...queued].map((d) => d.id));
      // Only id and time are read of a delivery handed over without its row (take claims it by id).
      this.signal.handOver(here.filter((d) => mine.has(d.id)) as unknown as Delivery[]);
      const endpoints = await this.markEndpointsDispatched([...new Set(batched.map((d) => d.target))]);
      this.handOverBatches(batched.filter((d) => endpoints.has(d.target)));
      relayed += here.length + queued.length + batched.length;
      if (leftBehind) {
        this.waitingForRoom = true;
        break;
      }
      if (found.length < BATCH) break;
    }
    return relayed;
  }

  /**
   * The oldest undispatched deliveries, each marked whether it goes in its endpoint's batches (in a batch already, or
   * to an endpoint that takes them, and not a redelivery sent alone: DeliveryService's inBatches, in SQL).
   */
  private async undispatched(): Promise<Array<HandedOver & { target: string; inBatches: boolean }>> {
    // The partial index of undispatched rows: the full (status, next_attempt_at) one would step over every pending
    // row already dispatched (a backlog being sent) at every round.
    return pendingRows(
      this.db,
      'd.dispatched_at IS NULL',
      BATCH,
      [],
      this.sql.indexedBy('idx_deliveries_undispatched'),
    );
  }

  /** Each endpoint's batches: due ones to the webhook worker here (or the queue), later ones into the queue. */
  private handOverBatches(batched: ReadonlyArray<HandedOver & { target: string }>): void {
    const first = new Map<string, Date>();
    for (const d of batched)
      if (!first.has(d.target) || first.get(d.target)! > d.nextAttemptAt) first.set(d.target, d.nextAttemptAt);
    const now = Date.now();
    const due = [...first].filter(([, at]) => at.getTime() <= now).map(([id]) => id);
    if (due.length) this.signal.handOverBatches(due);
    this.signal.queueBatches(
      [...first]
        .filter(([, at]) => at.getTime() > now)
        .map(([endpointId, nextAttemptAt]) => ({ endpointId, nextAttemptAt })),
    );
  }

  /** The webhook worker here finished sends: if due deliveries were left for want of room, relay again. */
  roomFreed(): void {
    if (!this.waitingForRoom || (this.signal.roomHere() ?? 0) < ROOM_WORTH_A_ROUND) return;
    this.waitingForRoom = false;
    void this.loop.kick();
  }

  /**
   * Marks the undispatched events in batches of these endpoints dispatched, up to ENDPOINT_MARK_ROWS of them, in
   * one statement: an endpoint's backlog is handed over once for that many events, not once per relay round of
   * BATCH rows (its batch run claims by endpoint, whatever is marked). Answers the endpoints this call marked rows of
   * (on PostgreSQL another process may have been first: it hands them over). Newest first: the oldest are the very
   * rows the endpoint's run is claiming, and on PostgreSQL marking them first held the claims behind its row locks
   * (~0.3 s a round) and deadlocked with the claims' own lock order; there, rows locked by a claim are also skipped,
   * not waited for. The oldest are still found by the next round if they are pending then.
   */
  private async markEndpointsDispatched(endpointIds: string[]): Promise<Set<string>> {
    if (endpointIds.length === 0) return new Set();
    const now = Date.now();
    const mark = `UPDATE deliveries SET dispatched_at = ${this.sql.params(1)} WHERE id IN (SELECT d.id FROM deliveries d ${this.sql.indexedBy('idx_deliveries_target_pending')} WHERE d.target IN (${this.sql.params(endpointIds.length, 2)}) AND d.status = 'pending' AND d.dispatched_at IS NULL AND ${IN_BATCHES} = 1 ORDER BY d.next_attempt_at DESC LIMIT ${ENDPOINT_MARK_ROWS}${this.sql.postgres ? ' FOR UPDATE SKIP LOCKED' : ''}) AND dispatched_at IS NULL`;
    if (!this.sql.postgres) {
      await this.uow.run((em) => em.query(mark, [now, ...endpointIds]));
      return new Set(endpointIds);
    }
    const marked = await this.uow.run((em) =>
      em.query<Array<{ target: string }>>(
        `WITH marked AS (${mark} RETURNING target) SELECT DISTINCT target FROM marked`,
        [now, ...endpointIds],
      ),
    );
    return new Set(marked.map((r) => r.target));
  }

  /** Marks these dispatched; answers the ids this call marked (on PostgreSQL another process may have been first). */
  private async markDispatched(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const now = new Date();
    if (!this.sql.postgres) {
      await this.uow.run((em) => em.update(Delivery, { id: In(ids), dispatchedAt: IsNull() }, { dispatchedAt: now }));
      return new Set(ids);
    }
    const result = await this.uow.run((em) =>
      em.query<unknown>(
        `UPDATE deliveries SET dispatched_at = $1 WHERE id IN (${this.sql.params(ids.length, 2)}) AND dispatched_at IS NULL RETURNING id`,
        [now.getTime(), ...ids],
      ),
    );
    return new Set(this.sql.returned<{ id: string }>(result).map((r) => r.id));
  }
}

/** DeliveryService's inBatches in SQL, for a pending delivery `d`. */
const IN_BATCHES = `CASE WHEN d.batch_id IS NOT NULL OR (d.target <> '${REQUEST_TARGET}' AND NOT d.send_alone AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.target AND e.batch_max_events IS NOT NULL)) THEN 1 ELSE 0 END`;

/**
 * Pending deliveries matching `where` (on `d`), oldest due first, each marked whether it goes in batches;
 * `indexedBy`: the index to walk (Sql.indexedBy).
 */
async function pendingRows(
  db: DataSource,
  where: string,
  limit: number,
  params: unknown[] = [],
  indexedBy = '',
): Promise<Array<HandedOver & { target: string; inBatches: boolean }>> {
  const rows = await db.query<Array<{ id: string; next_attempt_at: unknown; target: string; in_batches: unknown }>>(
    `SELECT d.id, d.next_attempt_at, d.target, ${IN_BATCHES} AS in_batches FROM deliveries d ${indexedBy} WHERE d.status = 'pending' AND ${where} ORDER BY d.next_attempt_at LIMIT ${limit}`,
    params,
  );
  return rows.map((r) => ({
    id: r.id,
    nextAttemptAt: new Date(Number(r.next_attempt_at)),
    target: r.target,
    inBatches: Number(r.in_batches) === 1,
  }));
}

/**
 * A relay batch (oldest due first): what this process's webhook worker sends (due, within its room), what goes into
 * the queue (not due yet; or everything where no webhook worker runs: room undefined), and whether due deliveries
 * were left for the worker's next room.
 */
export function splitForHere<T extends HandedOver>(
  batch: readonly T[],
  room: number | undefined,
  now: number,
): { here: T[]; queued: T[]; leftBehind: boolean } {
  if (room === undefined) return { here: [], queued: [...batch], leftBehind: false };
  const here: T[] = [];
  const queued: T[] = [];
  let leftBehind = false;
  for (const d of batch) {
    if (d.nextAttemptAt.getTime() > now) queued.push(d);
    else if (here.length < room) here.push(d);
    else leftBehind = true;
  }
  return { here, queued, leftBehind };
}

/**
 * The database is the truth: deliveries that are due but whose job is not in Redis (flushed, restarted), and
 * deliveries left "sending" by a worker that died, are handed back to the relay. Runs in every worker process.
 */
@Injectable()
export class DeliverySweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('DeliverySweeper');
  private readonly loop: IntervalLoop;
  private readonly sql: Sql;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly queue: WebhookQueue,
    private readonly signal: OutboxSignal,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('DeliverySweeper', config.sweepIntervalMs, () => this.sweep());
    this.sql = new Sql(db);
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  async sweep(): Promise<number> {
    const repo = this.db.getRepository(Delivery);
    const now = Date.now();
    // A send is bounded by the webhook timeout, and a claim that waited long for the wire restarts its clock before
    // it is sent (DeliveryService.confirmClaim): past the timeout plus a margin, its worker is gone.
    const stuckBefore = new Date(now - this.config.webhook.timeoutMs - 5_000 - 2 * this.config.sweepIntervalMs);
    const stuck = await repo.find({
      where: { status: 'sending', updatedAt: LessThan(stuckBefore) },
      select: { id: true },
      take: BATCH,
    });
    const handBack = stuck.map((d) => d.id);
    if (handBack.length) {
      await this.uow.run((em) =>
        em.update(
          Delivery,
          { id: In(handBack), status: 'sending' },
          { status: 'pending', dispatchedAt: null, updatedAt: new Date() },
        ),
      );
    }
    const overdue = await pendingRows(
      this.db,
      `d.dispatched_at IS NOT NULL AND d.next_attempt_at < ${this.sql.params(1)}`,
      BATCH,
      [now - 2 * this.config.sweepIntervalMs - 1_000],
    );
    const lost: string[] = [];
    // A delivery in batches has its endpoint's batch job, not one of its own (asked once per endpoint).
    const jobOf = (d: (typeof overdue)[number]) => (d.inBatches ? batchJobId(d.target) : d.id);
    const jobs = [...new Set(overdue.map(jobOf))];
    // Asked concurrently: the commands share one Redis connection back to back instead of a round trip each.
    const states = new Map(await Promise.all(jobs.map(async (job) => [job, await this.queue.state(job)] as const)));
    for (const job of jobs) {
      const state = states.get(job);
      if (state === 'completed' || state === 'failed' || state === 'unknown') await this.queue.remove(job);
    }
    for (const d of overdue) {
      const state = states.get(jobOf(d));
      if (state === undefined || state === 'completed' || state === 'failed' || state === 'unknown') lost.push(d.id);
    }
    if (lost.length)
      await this.uow.run((em) => em.update(Delivery, { id: In(lost), status: 'pending' }, { dispatchedAt: null }));
    const total = handBack.length + lost.length;
    if (total) {
      this.logger.log(`handed back ${handBack.length} stuck and ${lost.length} lost deliveries`);
      this.signal.kick();
    }
    return total;
  }
}
