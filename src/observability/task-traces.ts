import type { DataSource } from 'typeorm';
import { Sql } from '../database/sql.js';
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
  private readonly sql: Sql;

  // One column read by SQL: observability sits below tasks/ and does not import its entity.
  constructor(private readonly db: DataSource) {
    this.sql = new Sql(db);
  }

  /** Undefined, without a promise, when tracing is off or there is no task (the caller then need not await). */
  of(taskId: string | null): Promise<string | null> | undefined {
    if (!taskId || !tracingOn()) return undefined;
    const had = known.get(taskId);
    if (had !== undefined) return Promise.resolve(had);
    return this.db
      .query<Array<{ trace_parent: string | null }>>(
        `SELECT trace_parent FROM tasks WHERE id = ${this.sql.params(1)}`,
        [taskId],
      )
      .then(([task]) => {
        remember(taskId, task?.trace_parent ?? null);
        return task?.trace_parent ?? null;
      });
  }
}
