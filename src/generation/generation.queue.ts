import { InjectQueue } from '@nestjs/bullmq';
import { Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import { MicroBatcher } from '../common/micro-batcher.js';

export const GENERATION_QUEUE = 'generation';
export enum GenerationJob {
  Run = 'run',
}
export interface GenerationJobData {
  taskId: string;
  attempt: number;
}

/** One job per task attempt; the id makes a second enqueue (sweeper, retry of a request) a no-op. */
export const generationJobId = (taskId: string, attempt: number) => `gen-${taskId}-a${attempt}`;

@Injectable()
export class GenerationQueue {
  // Creates arriving together are added in one pipelined addBulk instead of a round trip each.
  private readonly adds = new MicroBatcher(async (jobs: GenerationJobData[]) => {
    await this.queue.addBulk(
      jobs.map((data) => ({
        name: GenerationJob.Run,
        data,
        opts: {
          jobId: generationJobId(data.taskId, data.attempt),
          attempts: 5,
          backoff: { type: 'exponential', delay: 1_000 },
          removeOnComplete: { age: 3_600, count: 10_000 },
          removeOnFail: { age: 7 * 86_400 },
        },
      })),
    );
    return jobs.map(() => undefined);
  }, 200);

  constructor(@InjectQueue(GENERATION_QUEUE) private readonly queue: Queue<GenerationJobData>) {}

  enqueue(taskId: string, attempt: number): Promise<void> {
    return this.adds.submit({ taskId, attempt });
  }

  /** Enqueues again after the job was lost or finished without finishing the task (a completed job would block the id). */
  async requeue(taskId: string, attempt: number): Promise<void> {
    const job = await this.queue.getJob(generationJobId(taskId, attempt));
    if (job && (await job.isCompleted())) await job.remove();
    await this.enqueue(taskId, attempt);
  }

  /** Removes a waiting job (a cancelled task); a running job stops by itself within one step. */
  async discard(taskId: string, attempt: number): Promise<void> {
    const job = await this.queue.getJob(generationJobId(taskId, attempt));
    if (job && (await job.isWaiting())) await job.remove().catch(() => undefined);
  }

  async state(taskId: string, attempt: number): Promise<string | undefined> {
    const job = await this.queue.getJob(generationJobId(taskId, attempt));
    return job ? job.getState() : undefined;
  }

  /** Jobs by state, for /metrics. */
  counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
  }
}
