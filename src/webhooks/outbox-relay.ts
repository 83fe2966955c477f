import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, IsNull, LessThan, Not } from 'typeorm';
import { InFlight } from '../common/in-flight.js';
import { IntervalLoop } from '../common/interval-loop.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { Delivery } from './delivery.entity.js';
import { HandedOver, OutboxSignal } from './outbox-signal.js';
import { WebhookQueue } from './webhook.queue.js';

const BATCH = 500;
const MAX_ROUNDS = 40;
// Another process's commits are picked up within this long; this process's own are relayed at once (kick).
const POLL_MS = 250;

/**
 * Moves committed, undispatched deliveries from the database into the BullMQ `webhooks` queue, in batches.
 * Safe in many processes at once: the job id is the delivery id, so a second add is a no-op.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('OutboxRelay');
  private readonly loop: IntervalLoop;
  private readonly handing = new InFlight();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly queue: WebhookQueue,
    signal: OutboxSignal,
    @Inject(CONFIG) config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('OutboxRelay', Math.min(POLL_MS, config.sweepIntervalMs), () => this.relay());
    signal.onKick(() => void this.loop.kick());
    signal.onQueue((deliveries) => this.handing.track(this.handOver(deliveries)));
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
      this.logger.warn(`could not queue ${deliveries.length} new deliveries, the relay will: ${(err as Error).message}`);
      const ids = deliveries.map((d) => d.id);
      await this.uow
        .run((em) => em.update(Delivery, { id: In(ids), status: 'pending' }, { dispatchedAt: null }))
        .catch((e: Error) => this.logger.warn(`could not mark them undispatched either, the sweeper will: ${e.message}`));
    }
  }

  async relay(): Promise<number> {
    let relayed = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const batch = await this.db.getRepository(Delivery).find({
        where: { status: 'pending', dispatchedAt: IsNull() },
        select: { id: true, nextAttemptAt: true },
        order: { nextAttemptAt: 'ASC' },
        take: BATCH,
      });
      if (batch.length === 0) break;
      await this.queue.dispatch(batch);
      const ids = batch.map((d) => d.id);
      await this.uow.run((em) => em.update(Delivery, { id: In(ids), dispatchedAt: IsNull() }, { dispatchedAt: new Date() }));
      relayed += batch.length;
      if (batch.length < BATCH) break;
    }
    return relayed;
  }
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
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly queue: WebhookQueue,
    private readonly signal: OutboxSignal,
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
    const repo = this.db.getRepository(Delivery);
    const now = Date.now();
    // A send is bounded by the webhook timeout, and a claim that waited long for the wire restarts its clock before
    // it is sent (DeliveryService.confirmClaim): past the timeout plus a margin, its worker is gone.
    const stuckBefore = new Date(now - this.config.webhook.timeoutMs - 5_000 - 2 * this.config.sweepIntervalMs);
    const stuck = await repo.find({ where: { status: 'sending', updatedAt: LessThan(stuckBefore) }, select: { id: true }, take: BATCH });
    const handBack = stuck.map((d) => d.id);
    if (handBack.length) {
      await this.uow.run((em) => em.update(Delivery, { id: In(handBack), status: 'sending' }, { status: 'pending', dispatchedAt: null, updatedAt: new Date() }));
    }
    const overdue = await repo.find({
      where: { status: 'pending', dispatchedAt: Not(IsNull()), nextAttemptAt: LessThan(new Date(now - 2 * this.config.sweepIntervalMs - 1_000)) },
      select: { id: true },
      order: { nextAttemptAt: 'ASC' },
      take: BATCH,
    });
    const lost: string[] = [];
    // Asked concurrently: the commands share one Redis connection back to back instead of a round trip each.
    const states = await Promise.all(overdue.map(({ id }) => this.queue.state(id)));
    for (const [i, { id }] of overdue.entries()) {
      const state = states[i];
      if (state === undefined || state === 'completed' || state === 'failed' || state === 'unknown') {
        if (state) await this.queue.remove(id);
        lost.push(id);
      }
    }
    if (lost.length) await this.uow.run((em) => em.update(Delivery, { id: In(lost), status: 'pending' }, { dispatchedAt: null }));
    const total = handBack.length + lost.length;
    if (total) {
      this.logger.log(`handed back ${handBack.length} stuck and ${lost.length} lost deliveries`);
      this.signal.kick();
    }
    return total;
  }
}
