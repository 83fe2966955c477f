import type { EntityManager } from 'typeorm';
import { entityFromRow, Sql } from '../database/sql.js';
import { sourcesOf, TaskStatus } from './task-state.js';
import { Task } from './task.entity.js';

/**
 * `lease`: the change also needs the task's lease to be this one (`id`, or none when null) and, with `liveAt`,
 * unexpired at that time, so a worker's change can never overtake a lease that replaced or outlived its own.
 */
export type Guard = { from?: TaskStatus[]; attempt?: number; lease?: { id: string | null; liveAt?: Date } };

export type TaskPatch = Partial<
  Pick<
    Task,
    | 'progress'
    | 'message'
    | 'result'
    | 'error'
    | 'errorCode'
    | 'startedAt'
    | 'completedAt'
    | 'attempt'
    | 'deadlineAt'
    | 'leaseId'
    | 'leaseWorkerId'
    | 'leaseTokenId'
    | 'leaseExpiresAt'
    | 'leaseCount'
  >
>;

/** One guarded status change of one task. */
export interface TaskUpdate {
  taskId: string;
  to: TaskStatus;
  patch: TaskPatch;
  guard: Guard;
}

/** The statuses a change may start from: its guard's, else every status the state machine allows `to` from. */
export const fromOf = (u: TaskUpdate): TaskStatus[] => u.guard.from ?? sourcesOf(u.to);

/** The properties a patch sets (one left undefined sets nothing). */
const setProperties = (patch: TaskPatch) =>
  (Object.keys(patch) as Array<keyof TaskPatch>).filter((k) => patch[k] !== undefined);

/**
 * What makes changes one statement: the same target status, guard statuses and kinds of guard, and the same
 * columns set. Changes of one shape differ only in their values, which the statement picks by task id.
 */
export function shapeOf(u: TaskUpdate): string {
  const columns = setProperties(u.patch).sort();
  const lease = u.guard.lease
    ? `${u.guard.lease.id === null ? 'none' : 'id'}${u.guard.lease.liveAt ? '+live' : ''}`
    : '';
  return [u.to, fromOf(u).join(','), columns.join(','), u.guard.attempt === undefined ? '' : 'attempt', lease].join(
    '|',
  );
}

/** The changes (indexes) grouped by shape, each group in the order given, groups in the order first seen. */
export function groupByShape(updates: readonly TaskUpdate[]): number[][] {
  const groups = new Map<string, number[]>();
  updates.forEach((u, at) => {
    const key = shapeOf(u);
    const group = groups.get(key);
    if (group) group.push(at);
    else groups.set(key, [at]);
  });
  return [...groups.values()];
}

/**
 * Guarded UPDATEs of different tasks of one shape as one statement: `SET col = CASE id WHEN … THEN … END` where
 * the values differ (a plain value where they are the same), each row's own guard picked the same way, and every
 * changed row returned. On SQLite each statement is a trip to the driver's thread and a turn of the event loop,
 * on PostgreSQL a round trip; a round of task changes used to send one per change (BENCHMARKS.md, finding 36).
 * Answers each change's task as changed, or null when its guard did not hold; `updates` must name distinct tasks.
 */
export async function updateTasks(em: EntityManager, updates: readonly TaskUpdate[]): Promise<Array<Task | null>> {
  if (updates.length === 0) return [];
  const sql = new Sql(em.connection);
  const meta = em.connection.getMetadata(Task);
  const driver = em.connection.driver;
  const params: unknown[] = [];
  // Placeholders are taken in the order they appear in the text (SQLite's ? are positional).
  const p = (value: unknown) => (params.push(value), sql.params(1, params.length));
  const ids = updates.map((u) => u.taskId);
  const columnOf = (property: string) => {
    const column = meta.findColumnWithPropertyName(property);
    if (!column) throw new Error(`Task has no column for ${property}`);
    return column;
  };
  // One value per task, or the value they share. PostgreSQL types a CASE of parameters as text: cast it back.
  const valueOf = (property: string, values: unknown[]) => {
    const column = columnOf(property);
    const stored = values.map((v): unknown => driver.preparePersistentValue(v, column) ?? null);
    if (stored.every((v) => v === stored[0])) return p(stored[0]);
    const cases = `CASE id ${stored.map((v, i) => `WHEN ${p(ids[i])} THEN ${p(v)}`).join(' ')} END`;
    return sql.postgres ? `CAST(${cases} AS ${driver.normalizeType(column)})` : cases;
  };
  const first = updates[0];
  const now = new Date();
  const set = setProperties(first.patch).map(
    (k) =>
      `${driver.escape(columnOf(k).databaseName)} = ${valueOf(
        k,
        updates.map((u) => u.patch[k]),
      )}`,
  );
  set.push(`status = ${p(first.to)}`, `updated_at = ${valueOf('updatedAt', [now])}`);
  let where = `id IN (${ids.map(p).join(', ')}) AND status IN (${fromOf(first).map(p).join(', ')})`;
  if (first.guard.attempt !== undefined)
    where += ` AND attempt = ${valueOf(
      'attempt',
      updates.map((u) => u.guard.attempt),
    )}`;
  const lease = first.guard.lease;
  if (lease) {
    where +=
      lease.id === null
        ? ' AND lease_id IS NULL'
        : ` AND lease_id = ${valueOf(
            'leaseId',
            updates.map((u) => u.guard.lease!.id),
          )}`;
    if (lease.liveAt)
      where += ` AND lease_expires_at > ${valueOf(
        'leaseExpiresAt',
        updates.map((u) => u.guard.lease!.liveAt),
      )}`;
  }
  const rows = await sql.updateReturning<Record<string, unknown>>(
    em,
    `UPDATE tasks SET ${set.join(', ')}, last_sequence = last_sequence + 1 WHERE ${where} RETURNING *`,
    params,
  );
  const changed = new Map(rows.map((row) => [String(row.id), entityFromRow(em, Task, row)]));
  return ids.map((id) => changed.get(id) ?? null);
}
