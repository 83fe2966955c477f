import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { IntervalLoop } from '../common/interval-loop.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { DeliveryDispatcher } from './delivery-dispatcher.js';
import { DeliveryRepository, type Dispatchable } from './delivery.repository.js';
import { batchJobId, WebhookQueue } from './webhook.queue.js';

const BATCH = 500;
const MAX_ROUNDS = 40;
// Another process's commits are picked up within this long; this process's own are relayed at once (kick).
const POLL_MS = 250;
// Free room in this process's webhook worker that is worth a relay round (a SELECT and an UPDATE) to fill.
const ROOM_WORTH_A_ROUND = 32;
// Events in batches that one relay round marks dispatched per call (DeliveryRepository.markEndpointsDispatched): a
// round holds SQLite's one connection ~50 ms for this many on this machine.
const ENDPOINT_MARK_ROWS = 5_000;

/**
 * Moves committed, undispatched deliveries on from the database, in batches, to the dispatcher (this process's
 * webhook worker as it has room, else the BullMQ `webhooks` queue). Safe in many processes at once: a delivery is
 * marked dispatched by one of them, the job id is the delivery id (a second add is a no-op), and a delivery is sent
 * only by whoever claims it.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly loop: IntervalLoop;
  // The last round left due deliveries for this process's webhook worker, which had no room then.
  private waitingForRoom = false;

  constructor(
    private readonly repo: DeliveryRepository,
    private readonly uow: UnitOfWork,
    private readonly dispatcher: DeliveryDispatcher,
    @Inject(CONFIG) config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('OutboxRelay', Math.min(POLL_MS, config.sweepIntervalMs), () => this.relay());
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  /** Deliveries were committed undispatched (or handed back): relay them now rather than at the next poll. */
  kick(): void {
    void this.loop.kick();
  }

  /**
   * Moves undispatched deliveries on, in batches. Where this process runs a webhook worker, those due now are sent
   * by it, as many as it has room for; due ones beyond its room stay undispatched until it has room again (then
   * the relay runs another round) or another process takes them. What is not due yet goes into the queue with its
   * delay, and a process without a webhook worker (ROLE=api) queues everything.
   */
  async relay(): Promise<number> {
    let relayed = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const found = await this.undispatched();
      if (found.length === 0) break;
      // Deliveries that go in their endpoint's batches are marked and handed on per endpoint, not one by one.
      const alone = found.filter((d) => !d.inBatches);
      const batched = found.filter((d) => d.inBatches);
      const { here, queued, leftBehind } = splitForHere(alone, this.dispatcher.room(), Date.now());
      const moving = [...here, ...queued];
      const mine = await this.markDispatched(moving.map((d) => d.id));
      const endpoints = await this.markEndpointsDispatched([...new Set(batched.map((d) => d.target))]);
      this.dispatcher.dispatch([
        ...moving.filter((d) => mine.has(d.id)),
        ...batched.filter((d) => endpoints.has(d.target)),
      ]);
      relayed += moving.length + batched.length;
      if (leftBehind) {
        this.relayWhenRoom();
        break;
      }
      if (found.length < BATCH) break;
    }
    return relayed;
  }

  /** The oldest undispatched deliveries, each marked whether it goes in its endpoint's batches. */
  private undispatched(): Promise<Dispatchable[]> {
    return this.repo.undispatched(BATCH);
  }

  /** Due deliveries were left for want of room here: relay again once the webhook worker here has room. */
  private relayWhenRoom(): void {
    if (this.waitingForRoom) return;
    this.waitingForRoom = true;
    void this.dispatcher.roomFor(ROOM_WORTH_A_ROUND).then(() => {
      this.waitingForRoom = false;
      void this.loop.kick();
    });
  }

  private markDispatched(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return Promise.resolve(new Set());
    return this.uow.run((em) => this.repo.markDispatched(em, ids));
  }

  private markEndpointsDispatched(endpointIds: string[]): Promise<Set<string>> {
    if (endpointIds.length === 0) return Promise.resolve(new Set());
    return this.uow.run((em) => this.repo.markEndpointsDispatched(em, endpointIds, ENDPOINT_MARK_ROWS));
  }
}

/**
 * A relay batch (oldest due first): what this process's webhook worker sends (due, within its room), what goes into
 * the queue (not due yet; or everything where no webhook worker runs: room undefined), and whether due deliveries
 * were left for the worker's next room.
 */
export function splitForHere<T extends { nextAttemptAt: Date }>(
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

  constructor(
    private readonly repo: DeliveryRepository,
    private readonly uow: UnitOfWork,
    private readonly queue: WebhookQueue,
    private readonly relay: OutboxRelay,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('DeliverySweeper', config.sweepIntervalMs, () => this.sweep());
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  async sweep(): Promise<number> {
    const now = Date.now();
    // A send is bounded by the webhook timeout, and a claim that waited long for the wire restarts its clock before
    // it is sent (DeliveryService.confirmClaim): past the timeout plus a margin, its worker is gone.
    const stuckBefore = new Date(now - this.config.webhook.timeoutMs - 5_000 - 2 * this.config.sweepIntervalMs);
    const handBack = await this.repo.stuck(stuckBefore, BATCH);
    if (handBack.length) await this.uow.run((em) => this.repo.handBackStuck(em, handBack));
    const overdue = await this.repo.overdue(now - 2 * this.config.sweepIntervalMs - 1_000, BATCH);
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
    if (lost.length) await this.uow.run((em) => this.repo.undispatch(em, { ids: lost }));
    const total = handBack.length + lost.length;
    if (total) {
      this.logger.log(`handed back ${handBack.length} stuck and ${lost.length} lost deliveries`);
      this.relay.kick();
    }
    return total;
  }
}
