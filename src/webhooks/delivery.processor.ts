import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Inject, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job } from 'bullmq';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { DeliveryService } from './delivery.service.js';
import { deliveriesHeld } from './local-sender.js';
import {
  RetryLater,
  WEBHOOK_QUEUE,
  WebhookJob,
  WebhookJobData,
  WebhookQueue,
  webhookBackoff,
} from './webhook.queue.js';

// A batch job that failed (the database refused its claim) comes again after this long.
const BATCH_RETRY_MS = 1_000;

/**
 * The webhook worker's BullMQ side: retries, ordering waits and what the relay queued (one line per job name; a
 * retry throws, and the backoff strategy waits the delay the rules chose). First attempts due now are sent by the
 * LocalSender without a job.
 */
@Processor(WEBHOOK_QUEUE, {
  settings: { backoffStrategy: webhookBackoff },
  lockDuration: 15_000,
  stalledInterval: 5_000,
  maxStalledCount: 1_000,
})
export class DeliveryProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('WebhookWorker');
  constructor(
    private readonly deliveries: DeliveryService,
    private readonly queue: WebhookQueue,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = deliveriesHeld(this.config, this.deliveries.ledgerCapacity);
  }

  /**
   * Before anything closes: let the sends on the wire finish (the worker takes no new job, and claimed jobs still
   * waiting for the wire give their claim back), then wait for their attempts to be committed, so a clean shutdown
   * leaves nothing `sending`.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.deliveries.stopSending();
    try {
      await this.worker.close();
    } catch {
      // No worker in this role, or Redis is gone: nothing is on the wire then.
    }
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
      if (inMs !== undefined) this.queue.addBatches([{ endpointId, nextAttemptAt: new Date(Date.now() + inMs) }]);
    } catch (err) {
      // The sweeper finds its events (due, dispatched, no job) and hands them back.
      this.logger.warn(`batches of endpoint ${endpointId}: ${(err as Error).message}`);
    }
  }

  @OnWorkerEvent('failed')
  onFailed(job: Job<WebhookJobData> | undefined): void {
    if (job?.name !== WebhookJob.DeliverBatches || !job.data.endpointId) return;
    this.queue.addBatches([{ endpointId: job.data.endpointId, nextAttemptAt: new Date(Date.now() + BATCH_RETRY_MS) }]);
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
