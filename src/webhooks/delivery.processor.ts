import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Inject, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job } from 'bullmq';
import { InFlight } from '../common/in-flight.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { Delivery } from './delivery.entity.js';
import { DeliveryRun, DeliveryService } from './delivery.service.js';
import { OutboxSignal } from './outbox-signal.js';
import { RetryLater, WEBHOOK_QUEUE, WebhookJob, WebhookJobData, webhookBackoff } from './webhook.queue.js';

// A batch job that failed (the database refused its claim) comes again after this long.
const BATCH_RETRY_MS = 1_000;

export const JOBS_PER_SEND_SLOT = 2;

/**
 * The webhook worker: BullMQ jobs (one line per job name; a retry throws, and the backoff strategy waits the delay
 * the rules chose), and the first attempts this process sends without a job (take).
 */
@Processor(WEBHOOK_QUEUE, {
  settings: { backoffStrategy: webhookBackoff },
  lockDuration: 15_000,
  stalledInterval: 5_000,
  maxStalledCount: 1_000,
})
export class DeliveryProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('WebhookWorker');
  // First attempts sent here without a job: deliveries this process committed or its relay took (see take).
  private readonly here = new InFlight();
  private hereCount = 0;
  private closing = false;
  // Endpoints whose batches this process is sending now, without a job; and those handed over again meanwhile.
  private readonly batchRuns = new Set<string>();
  private readonly batchAgain = new Set<string>();
  constructor(
    private readonly deliveries: DeliveryService,
    private readonly signal: OutboxSignal,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    super();
  }

  /**
   * The worker holds more jobs than may be on the wire (the sender's limit): a job spends most of its time waiting
   * for its claim in the database's next round, and the spare jobs keep the wire full meanwhile. It holds twice the
   * wire's places, and at least enough to fill the ledger's rounds (128 on SQLite, 2 × 128 on PostgreSQL): measured
   * at 16 on the wire, 32 → 128 jobs took SQLite from 0.78× to ~1× the BullMQ + axios baseline, and 128 → 256 gave
   * PostgreSQL another 5–8 % (docs/BENCHMARKS.md, finding 23). A claim that waits long for the wire is confirmed
   * before it is sent (DeliveryService), so holding many is safe with slow receivers too.
   */
  onApplicationBootstrap(): void {
    this.worker.concurrency = Math.max(
      JOBS_PER_SEND_SLOT * this.config.webhook.concurrency,
      this.deliveries.ledgerCapacity,
    );
    this.signal.sendHere({
      room: () => this.room(),
      take: (deliveries) => this.take(deliveries),
      takeBatches: (ids) => this.takeBatches(ids),
    });
  }

  /**
   * Deliveries this process has just committed, or its relay has just taken from the outbox (both marked
   * dispatched), and that are due now are sent here, without a trip through Redis: a job's add, pick-up and finish
   * cost about a fifth of a webhook's CPU and, on a busy process, most of the time from event to receipt. It takes
   * as many as it holds jobs (the rest go into the queue), and always those the planner wrote already claimed for it
   * (DeliveryPlanner.claimAtBirth asked for room first). Only the first try is sent so: a retry or an ordering wait
   * goes into the queue with its delay. Should the process die first, the sweeper finds them (due, dispatched, not
   * in Redis; or left sending) and hands them back, as for any hand-over.
   */
  private take(deliveries: Delivery[]): Delivery[] {
    const now = Date.now();
    const rest: Delivery[] = [];
    for (const d of deliveries) {
      if (d.status === 'sending') this.here.track(this.sendHere(d.id, () => this.deliveries.deliverClaimedAtBirth(d)));
      else if (this.room() > 0 && d.nextAttemptAt.getTime() <= now)
        this.here.track(this.sendHere(d.id, () => this.deliveries.deliver(d.id)));
      else rest.push(d);
    }
    return rest;
  }

  /**
   * Endpoints with due events in batches, sent here without a job: one run per endpoint at a time (one handed over
   * while its run is on is looked at again when the run ends). What cannot go now goes into the queue as the
   * endpoint's batch job, delayed until it can.
   */
  private takeBatches(endpointIds: string[]): string[] {
    if (this.closing) return endpointIds;
    for (const id of endpointIds) {
      if (this.batchRuns.has(id)) this.batchAgain.add(id);
      else this.here.track(this.runBatchesHere(id));
    }
    return [];
  }

  private async runBatchesHere(endpointId: string): Promise<void> {
    this.batchRuns.add(endpointId);
    try {
      for (;;) {
        this.batchAgain.delete(endpointId);
        const next = await this.deliveries.deliverBatches(endpointId);
        if (this.batchAgain.has(endpointId) && !this.closing) continue;
        if (next !== undefined) this.signal.queueBatches([{ endpointId, nextAttemptAt: new Date(Date.now() + next) }]);
        return;
      }
    } catch (err) {
      this.logger.warn(`batches of endpoint ${endpointId} go to the queue: ${(err as Error).message}`);
      this.signal.queueBatches([{ endpointId, nextAttemptAt: new Date(Date.now() + BATCH_RETRY_MS) }]);
    } finally {
      this.batchRuns.delete(endpointId);
    }
  }

  private room(): number {
    return this.closing ? 0 : Math.max(0, this.worker.concurrency - this.hereCount);
  }

  private async sendHere(deliveryId: string, send: () => Promise<DeliveryRun>): Promise<void> {
    this.hereCount++;
    try {
      const run = await send();
      if (run.outcome === 'retry' || run.outcome === 'wait')
        this.signal.queue([{ id: deliveryId, nextAttemptAt: new Date(Date.now() + run.delayMs) }]);
    } catch (err) {
      // The database refused the claim or the record: the queue tries again, as it would a job that threw.
      this.logger.warn(`delivery ${deliveryId} goes to the queue: ${(err as Error).message}`);
      this.signal.queue([{ id: deliveryId, nextAttemptAt: new Date(Date.now() + 1_000) }]);
    } finally {
      this.hereCount--;
      this.signal.roomFreed();
    }
  }

  /**
   * Before anything closes: let the sends on the wire finish (the worker takes no new job, and claimed jobs still
   * waiting for the wire give their claim back), then wait for their attempts to be committed, so a clean shutdown
   * leaves nothing `sending`.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.deliveries.stopSending();
    this.closing = true;
    try {
      await this.worker.close();
    } catch {
      // No worker in this role, or Redis is gone: nothing is on the wire then.
    }
    await this.here.settled();
    await this.deliveries.settled();
  }

  /** Redis errors (a flush, a restart) are expected and recovered by the sweepers: log them, don't crash. */
  @OnWorkerEvent('error')
  onWorkerError(err: Error): void {
    this.logger.warn(`worker error: ${err.message}`);
  }

  /**
   * An endpoint's batch job has finished (and is gone from Redis, so it can be added again): it comes again when
   * the endpoint's next batch can go — as its run said, or, when the run found nothing, as the outbox says now
   * (events committed while the run ended found the job still there).
   */
  @OnWorkerEvent('completed')
  async onCompleted(job: Job<WebhookJobData>, next: unknown): Promise<void> {
    if (job.name !== (WebhookJob.DeliverBatches as string) || !job.data.endpointId) return;
    const endpointId = job.data.endpointId;
    try {
      const inMs = typeof next === 'number' ? next : await this.deliveries.nextBatchIn(endpointId);
      if (inMs !== undefined) this.signal.queueBatches([{ endpointId, nextAttemptAt: new Date(Date.now() + inMs) }]);
    } catch (err) {
      // The sweeper finds its events (due, dispatched, no job) and hands them back.
      this.logger.warn(`batches of endpoint ${endpointId}: ${(err as Error).message}`);
    }
  }

  @OnWorkerEvent('failed')
  onFailed(job: Job<WebhookJobData> | undefined): void {
    if (job?.name !== WebhookJob.DeliverBatches || !job.data.endpointId) return;
    this.signal.queueBatches([
      { endpointId: job.data.endpointId, nextAttemptAt: new Date(Date.now() + BATCH_RETRY_MS) },
    ]);
  }

  async process(job: Job<WebhookJobData>): Promise<string | number | null> {
    switch (job.name as WebhookJob) {
      case WebhookJob.DeliverBatches:
        // When to come again (ms), or null: the endpoint had nothing left (see onCompleted).
        return (await this.deliveries.deliverBatches(job.data.endpointId!)) ?? null;
      case WebhookJob.Deliver: {
        const run = await this.deliveries.deliver(job.data.deliveryId!);
        if (run.outcome === 'retry') throw new RetryLater(run.delayMs, run.reason);
        if (run.outcome === 'wait')
          throw new RetryLater(run.delayMs, 'waiting for an earlier event to the same target');
        return run.outcome;
      }
      default:
        throw new Error(`unknown webhook job ${job.name}`);
    }
  }
}
