import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Inject, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Job } from 'bullmq';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { DeliveryService } from './delivery.service.js';
import { RetryLater, WEBHOOK_QUEUE, WebhookJob, WebhookJobData, webhookBackoff } from './webhook.queue.js';

export const JOBS_PER_SEND_SLOT = 2;

/** Thin: one line per job name. A retry throws, and the backoff strategy waits the delay the rules chose. */
@Processor(WEBHOOK_QUEUE, { settings: { backoffStrategy: webhookBackoff }, lockDuration: 15_000, stalledInterval: 5_000, maxStalledCount: 1_000 })
export class DeliveryProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('WebhookWorker');
  constructor(
    private readonly deliveries: DeliveryService,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    super();
  }

  /**
   * The worker holds twice as many jobs as may be on the wire (the sender's limit): a job spends most of its time
   * waiting for its claim in the database's next round, and the spare jobs keep the wire full meanwhile
   * (measured: 0.8× → ~1× the BullMQ + axios baseline at 64 on the wire, docs/BENCHMARKS.md).
   */
  onApplicationBootstrap(): void {
    this.worker.concurrency = JOBS_PER_SEND_SLOT * this.config.webhook.concurrency;
  }

  /**
   * Before anything closes: let the sends on the wire finish (the worker takes no new job), then wait for their
   * attempts to be committed, so a clean shutdown leaves nothing `sending`.
   */
  async beforeApplicationShutdown(): Promise<void> {
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

  async process(job: Job<WebhookJobData>): Promise<string> {
    switch (job.name as WebhookJob) {
      case WebhookJob.Deliver: {
        const run = await this.deliveries.deliver(job.data.deliveryId);
        if (run.outcome === 'retry') throw new RetryLater(run.delayMs, run.reason);
        if (run.outcome === 'wait') throw new RetryLater(run.delayMs, 'waiting for an earlier event to the same target');
        return run.outcome;
      }
      default:
        throw new Error(`unknown webhook job ${job.name}`);
    }
  }
}
