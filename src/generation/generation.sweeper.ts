import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, LessThan, LessThanOrEqual } from 'typeorm';
import { IntervalLoop } from '../common/interval-loop.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { TaskTransitions } from '../tasks/task-transitions.service.js';
import { Task } from '../tasks/task.entity.js';
import { GenerationQueue } from './generation.queue.js';
import { timeoutPatch } from './generation.runner.js';

const BATCH = 200;

/**
 * The database is the truth: tasks past their deadline become `timedout`, and unfinished tasks whose job is
 * missing from Redis (flushed, restarted) are enqueued again. Safe to run in every worker process.
 */
@Injectable()
export class GenerationSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('GenerationSweeper');
  private readonly loop: IntervalLoop;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly transitions: TaskTransitions,
    private readonly queue: GenerationQueue,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('GenerationSweeper', config.sweepIntervalMs, () => this.sweep());
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  async sweep(): Promise<{ timedOut: number; requeued: number }> {
    const tasks = this.db.getRepository(Task);
    const now = new Date();
    let timedOut = 0;
    for (const task of await tasks.find({
      where: { status: In(['pending', 'processing']), deadlineAt: LessThanOrEqual(now) },
      take: BATCH,
    })) {
      if (await this.transitions.apply(task.id, 'timedout', timeoutPatch(task), { attempt: task.attempt })) timedOut++;
    }
    // A task untouched for a few rounds may have lost its job; look it up in Redis before re-adding.
    const quietSince = new Date(now.getTime() - 2 * this.config.sweepIntervalMs);
    let requeued = 0;
    // Worker-routed tasks have no job: they wait in the database for a lease (see src/workers).
    for (const task of await tasks.find({
      where: { status: In(['pending', 'processing']), provider: 'simulator', updatedAt: LessThan(quietSince) },
      order: { updatedAt: 'ASC' },
      take: BATCH,
    })) {
      const state = await this.queue.state(task.id, task.attempt);
      if (state === undefined || state === 'completed' || state === 'unknown') {
        await this.queue.requeue(task.id, task.attempt);
        requeued++;
      } else if (state === 'failed') {
        await this.transitions.apply(
          task.id,
          'failed',
          { error: 'The generation worker failed repeatedly', errorCode: 'worker_error', completedAt: new Date() },
          { attempt: task.attempt },
        );
      }
    }
    if (timedOut || requeued) this.logger.log(`timed out ${timedOut}, re-enqueued ${requeued}`);
    return { timedOut, requeued };
  }
}
