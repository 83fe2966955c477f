import { OnWorkerEvent, Processor, WorkerHost } from '@nestjs/bullmq';
import { BeforeApplicationShutdown, Inject, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DelayedError, Job } from 'bullmq';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { GENERATION_QUEUE, GenerationJob, GenerationJobData } from './generation.queue.js';
import { GenerationRunner } from './generation.runner.js';

/** Thin: one line per job name. On shutdown, running generations are handed back to the queue, not lost. */
// A killed worker's jobs are taken over once its lock lapses; a crash is never a reason to fail a task.
@Processor(GENERATION_QUEUE, { lockDuration: 15_000, stalledInterval: 5_000, maxStalledCount: 1_000 })
export class GenerationProcessor extends WorkerHost implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('GenerationWorker');
  private readonly shutdown = new AbortController();
  /** Running generations this process handed back to the queue on shutdown (for the shutdown log line). */
  handedBack = 0;

  constructor(
    private readonly runner: GenerationRunner,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.worker.concurrency = this.config.generationConcurrency;
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.worker.pause(true).catch(() => undefined);
    this.shutdown.abort();
  }

  /** Redis errors (a flush, a restart) are expected and recovered by the sweepers: log them, don't crash. */
  @OnWorkerEvent('error')
  onWorkerError(err: Error): void {
    this.logger.warn(`worker error: ${err.message}`);
  }

  async process(job: Job<GenerationJobData>, token?: string): Promise<unknown> {
    switch (job.name as GenerationJob) {
      case GenerationJob.Run:
        try {
          return await this.runner.run(job.data.taskId, job.data.attempt, this.shutdown.signal);
        } catch (err) {
          if (!this.shutdown.signal.aborted) throw err;
          // Hand the job back: another worker (or this one after restart) resumes from the recorded progress.
          this.logger.log(`handing back task ${job.data.taskId} on shutdown`);
          await job.moveToDelayed(Date.now() + 100, token);
          this.handedBack++;
          throw new DelayedError();
        }
      default:
        throw new Error(`unknown generation job ${job.name}`);
    }
  }
}
