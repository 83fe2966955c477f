import type { DataSource } from 'typeorm';
import { Task } from '../tasks/task.entity.js';
import { tracingOn } from './tracing.js';

// Deliveries of one task come in bursts (queued, started, progress…, completed): a few thousand tasks are plenty.
const REMEMBERED = 10_000;

/**
 * The traceparent stored with each task, for the spans of its webhook attempts (in whichever process sends them).
 * Read only while tracing is on, once per task, so deliveries carry no trace column and untraced sends read nothing.
 */
export class TaskTraces {
  private readonly known = new Map<string, string | null>();

  constructor(private readonly db: DataSource) {}

  /** Undefined, without a promise, when tracing is off or there is no task (the caller then need not await). */
  of(taskId: string | null): Promise<string | null> | undefined {
    if (!taskId || !tracingOn()) return undefined;
    const known = this.known.get(taskId);
    if (known !== undefined) return Promise.resolve(known);
    return this.db
      .getRepository(Task)
      .findOne({ where: { id: taskId }, select: { id: true, traceParent: true } })
      .then((task) => {
        if (this.known.size >= REMEMBERED) this.known.delete(this.known.keys().next().value!);
        this.known.set(taskId, task?.traceParent ?? null);
        return task?.traceParent ?? null;
      });
  }
}
