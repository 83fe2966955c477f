import type { GenerationOptions, SimulateOptions, TaskKind } from './task.entity.js';

/**
 * What the task API asks of the built-in generation engine: how long a task will take, to start an attempt, and to
 * drop an attempt's waiting job. GenerationModule provides it; the composition root hands that module to
 * TasksApiModule, so tasks/ never imports generation/ (which imports tasks/).
 */
export abstract class GenerationEngine {
  abstract estimateDurationMs(input: {
    kind: TaskKind;
    simulate: SimulateOptions | null;
    options: GenerationOptions;
  }): number;
  abstract enqueue(taskId: string, attempt: number): Promise<void>;
  abstract discard(taskId: string, attempt: number): Promise<void>;
}
