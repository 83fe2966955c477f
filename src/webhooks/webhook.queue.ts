import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Queue } from 'bullmq';
import { InFlight } from '../common/in-flight.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { DeliveryRepository } from './delivery.repository.js';

export const WEBHOOK_QUEUE = 'webhooks';
export enum WebhookJob {
  Deliver = 'deliver',
  /** The batches of one endpoint: its due events go in batch requests until none is left to go now. */
  DeliverBatches = 'deliver-batches',
}
export interface WebhookJobData {
  deliveryId?: string;
  endpointId?: string;
}

/** The one job of an endpoint's batches (a second add while it waits or runs is a no-op). */
export const batchJobId = (endpointId: string) => `batch-${endpointId}`;

/** An endpoint's batches, due at `nextAttemptAt`. */
export interface BatchesDue {
  endpointId: string;
  nextAttemptAt: Date;
}

/** Thrown by the processor so BullMQ schedules the next try after exactly this delay (our backoff strategy). */
export class RetryLater extends Error {
  constructor(
    readonly delayMs: number,
    reason: string,
  ) {
    super(reason);
    this.name = 'RetryLater';
  }
}

export const WEBHOOK_BACKOFF = 'herald';

/** BullMQ backoff strategy: the delay the delivery rules chose. */
export function webhookBackoff(_attemptsMade: number, _type?: string, err?: Error): number {
  return err instanceof RetryLater ? err.delayMs : 1_000;
}

/** One job per delivery, id = delivery id, so the relay and the sweeper can re-add without doubling. */
@Injectable()
export class WebhookQueue implements OnApplicationShutdown {
  private readonly logger = new Logger('WebhookQueue');
  // Adds not yet answered by Redis: shutdown waits for them before Redis closes.
  private readonly adding = new InFlight();

  constructor(
    @InjectQueue(WEBHOOK_QUEUE) private readonly queue: Queue<WebhookJobData>,
    private readonly uow: UnitOfWork,
    private readonly repo: DeliveryRepository,
  ) {}

  /**
   * Deliveries marked dispatched into the queue, in the background. Should Redis refuse them, they are marked
   * undispatched again for the relay; should that fail too, the sweeper finds them (due, dispatched, not in Redis)
   * and hands them back.
   */
  add(deliveries: Array<{ id: string; nextAttemptAt: Date }>): void {
    if (deliveries.length === 0) return;
    this.adding.track(
      this.dispatch(deliveries).catch(async (err: Error) => {
        this.logger.warn(`could not queue ${deliveries.length} deliveries, the relay will: ${err.message}`);
        const ids = deliveries.map((d) => d.id);
        await this.uow
          .run((em) => this.repo.undispatch(em, { ids }))
          .catch((e: Error) =>
            this.logger.warn(`could not mark them undispatched either, the sweeper will: ${e.message}`),
          );
      }),
    );
  }

  /** Endpoints' batch jobs into the queue, in the background. Should Redis refuse, the sweeper finds their events. */
  addBatches(due: readonly BatchesDue[]): void {
    if (due.length === 0) return;
    this.adding.track(
      this.dispatchBatches(due).catch((err: Error) =>
        this.logger.warn(`could not queue the batches of ${due.length} endpoints, the sweeper will: ${err.message}`),
      ),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    await this.adding.settled();
  }

  async dispatch(deliveries: Array<{ id: string; nextAttemptAt: Date }>): Promise<void> {
    const now = Date.now();
    await this.queue.addBulk(
      deliveries.map((d) => ({
        name: WebhookJob.Deliver,
        data: { deliveryId: d.id },
        opts: {
          jobId: d.id,
          delay: Math.max(0, d.nextAttemptAt.getTime() - now),
          // The database decides when a delivery is finished; BullMQ only carries it between tries.
          attempts: 10_000,
          backoff: { type: WEBHOOK_BACKOFF },
          removeOnComplete: true,
          removeOnFail: { age: 86_400 },
        },
      })),
    );
  }

  /**
   * The batch job of each endpoint. The worker that runs it adds it again once it has finished, when the endpoint
   * still has events pending (see DeliveryProcessor), so it is removed whether it completes or fails.
   */
  async dispatchBatches(due: readonly BatchesDue[]): Promise<void> {
    if (due.length === 0) return;
    const now = Date.now();
    await this.queue.addBulk(
      due.map((d) => ({
        name: WebhookJob.DeliverBatches,
        data: { endpointId: d.endpointId },
        opts: {
          jobId: batchJobId(d.endpointId),
          delay: Math.max(0, d.nextAttemptAt.getTime() - now),
          attempts: 1,
          removeOnComplete: true,
          removeOnFail: true,
        },
      })),
    );
  }

  /** The job's state in Redis, or undefined when Redis has no such job. */
  async state(deliveryId: string): Promise<string | undefined> {
    const job = await this.queue.getJob(deliveryId);
    return job ? job.getState() : undefined;
  }

  async remove(deliveryId: string): Promise<void> {
    await this.queue.remove(deliveryId).catch(() => undefined);
  }

  /** Jobs by state, for /metrics. */
  counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
  }
}
