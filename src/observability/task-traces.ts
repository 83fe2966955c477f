import type { DataSource } from 'typeorm';
import { Task } from '../tasks/task.entity.js';
import { tracingOn } from './tracing.js';

// Deliveries of one task come in bursts (queued, started, progress…, completed): a few thousand tasks are plenty.
const REMEMBERED = 10_000;

// Process-wide: the process that creates or changes a task (usually the one that sends its webhooks) knows its
// traceparent already, and a read from the database on the send path waited behind SQLite's busy connection.
const known = new Map<string, string | null>();

function remember(taskId: string, traceParent: string | null): void {
  if (known.size >= REMEMBERED) known.delete(known.keys().next().value!);
  known.set(taskId, traceParent);
}

/** Called where a task is created or changed while tracing is on, so its webhook attempts need no read. */
export function rememberTaskTrace(taskId: string, traceParent: string | null): void {
  if (tracingOn() && !known.has(taskId)) remember(taskId, traceParent);
}

/**
 * The traceparent stored with each task, for the spans of its webhook attempts (in whichever process sends them).
 * Read only while tracing is on, at most once per task per process, so deliveries carry no trace column and
 * untraced sends read nothing.
 */
export class TaskTraces {
  constructor(private readonly db: DataSource) {}

  /** Undefined, without a promise, when tracing is off or there is no task (the caller then need not await). */
  of(taskId: string | null): Promise<string | null> | undefined {
    if (!taskId || !tracingOn()) return undefined;
    const had = known.get(taskId);
    if (had !== undefined) return Promise.resolve(had);
    return this.db
      .getRepository(Task)
      .findOne({ where: { id: taskId }, select: { id: true, traceParent: true } })
      .then((task) => {
        remember(taskId, task?.traceParent ?? null);
        return task?.traceParent ?? null;
      });
  }
}
