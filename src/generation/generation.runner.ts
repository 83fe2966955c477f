import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Task } from '../tasks/task.entity.js';
import { TaskTransitions } from '../tasks/task-transitions.service.js';
import type { TaskPatch } from '../tasks/task-updates.js';
import { isTerminal } from '../tasks/task-state.js';
import { ArtifactStore } from './artifact-store.js';
import { GENERATION_PROVIDER, GenerationProvider, ProviderError } from './provider.js';

export type RunOutcome = 'completed' | 'failed' | 'stopped' | 'skipped';

export function timeoutPatch(task: Pick<Task, 'timeoutSeconds'>): TaskPatch {
  return {
    error: `Generation did not finish within timeout_seconds (${task.timeoutSeconds} s)`,
    errorCode: 'timeout',
    completedAt: new Date(),
    message: 'Timed out',
  };
}

/** Runs one attempt of a task through the provider, recording every step through TaskTransitions. */
@Injectable()
export class GenerationRunner {
  private readonly logger = new Logger('Generation');

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly transitions: TaskTransitions,
    private readonly artifacts: ArtifactStore,
    @Inject(GENERATION_PROVIDER) private readonly provider: GenerationProvider,
  ) {}

  // Each change names its one from-status and the task's tenant: a round of only such changes reads no status first.
  async run(taskId: string, attempt: number, signal: AbortSignal): Promise<RunOutcome> {
    let task = await this.db.getRepository(Task).findOneBy({ id: taskId });
    if (!task || task.attempt !== attempt || isTerminal(task.status) || task.provider !== 'simulator') return 'skipped';
    if (this.pastDeadline(task)) return this.timeOut(task);
    if (task.status === 'pending') {
      task = await this.transitions.apply(
        taskId,
        'processing',
        { startedAt: new Date(), progress: 0, message: 'Generation started' },
        { from: ['pending'], attempt },
        task.tenantId,
      );
      if (!task) return 'skipped';
    }
    const current = task;
    try {
      const output = await this.provider.generate(
        {
          taskId,
          attempt,
          kind: current.kind,
          model: current.model,
          prompt: current.prompt,
          options: current.options,
          params: current.params,
          simulate: current.simulate,
          resumeFromPercent: current.progress,
        },
        {
          signal,
          progress: async (percent, message) => {
            if (this.pastDeadline(current)) {
              await this.timeOut(current);
              return false;
            }
            const updated = await this.transitions.apply(
              taskId,
              'processing',
              { progress: percent, message },
              { from: ['processing'], attempt },
              current.tenantId,
            );
            return updated !== null;
          },
        },
      );
      if (output === 'stopped') return 'stopped';
      const data = await this.artifacts.save(taskId, attempt, output, current.options.response_format ?? 'url');
      const done = await this.transitions.apply(
        taskId,
        'completed',
        {
          progress: 100,
          message: current.kind === 'video' ? 'Video generation complete' : 'Image generation complete',
          completedAt: new Date(),
          result: {
            created: Math.floor(Date.now() / 1000),
            data,
            model: current.model,
            usage: { generation_ms: Date.now() - (current.startedAt?.getTime() ?? Date.now()) },
          },
        },
        { from: ['processing'], attempt },
        current.tenantId,
      );
      return done ? 'completed' : 'stopped';
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      await this.transitions.apply(
        taskId,
        'failed',
        { error: err.message, errorCode: err.code, completedAt: new Date(), message: 'Generation failed' },
        { from: ['pending', 'processing'], attempt },
      );
      return 'failed';
    }
  }

  private pastDeadline(task: Task): boolean {
    return task.deadlineAt !== null && task.deadlineAt.getTime() <= Date.now();
  }

  private async timeOut(task: Task): Promise<RunOutcome> {
    const done = await this.transitions.apply(task.id, 'timedout', timeoutPatch(task), { attempt: task.attempt });
    if (done) this.logger.log(`task ${task.id} timed out`);
    return 'stopped';
  }
}
