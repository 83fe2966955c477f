import type { EntityManager } from 'typeorm';
import { byKey, entityFromRow, jsonSafe, Sql } from '../database/sql.js';
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
 * Guarded UPDATEs of different tasks of one shape as one statement: each row's own values and guards picked by
 * its id (byJson on SQLite, byCases on PostgreSQL), and every changed row returned. On SQLite each statement is a
 * trip to the driver's thread and a turn of the event loop, on PostgreSQL a round trip; a round of task changes
 * used to send one per change (BENCHMARKS.md, finding 36).
 * Answers each change's task as changed, or null when its guard did not hold; `updates` must name distinct tasks.
 */
export async function updateTasks(em: EntityManager, updates: readonly TaskUpdate[]): Promise<Array<Task | null>> {
  if (updates.length === 0) return [];
  const meta = em.connection.getMetadata(Task);
  const driver = em.connection.driver;
  const term = (property: string, values: unknown[], op = '='): Term => {
    const column = meta.findColumnWithPropertyName(property);
    if (!column) throw new Error(`Task has no column for ${property}`);
    const stored = values.map((v): unknown => driver.preparePersistentValue(v, column) ?? null);
    return { column: driver.escape(column.databaseName), type: driver.normalizeType(column), op, stored };
  };
  const first = updates[0];
  const lease = first.guard.lease;
  const values = (pick: (u: TaskUpdate) => unknown) => updates.map(pick);
  const guards = [
    first.guard.attempt !== undefined &&
      term(
        'attempt',
        values((u) => u.guard.attempt),
      ),
    lease &&
      lease.id !== null &&
      term(
        'leaseId',
        values((u) => u.guard.lease!.id),
      ),
    lease?.liveAt &&
      term(
        'leaseExpiresAt',
        values((u) => u.guard.lease!.liveAt),
        '>',
      ),
  ];
  const shape: Shape = {
    ids: updates.map((u) => u.taskId),
    to: first.to,
    from: fromOf(first),
    now: driver.preparePersistentValue(new Date(), meta.findColumnWithPropertyName('updatedAt')!),
    sets: setProperties(first.patch).map((k) =>
      term(
        k,
        values((u) => u.patch[k]),
      ),
    ),
    guards: guards.filter((t): t is Term => Boolean(t)),
    leaseNone: lease?.id === null,
  };
  const sql = new Sql(em.connection);
  const viaJson = !sql.postgres && [...shape.sets, ...shape.guards].every((t) => t.stored.every(jsonSafe));
  const rows = await sql.updateReturning<Record<string, unknown>>(
    em,
    ...(viaJson ? byJson(shape) : byCases(sql, shape)),
  );
  const changed = new Map(rows.map((row) => [String(row.id), entityFromRow(em, Task, row)]));
  return shape.ids.map((id) => changed.get(id) ?? null);
}

/** A column a statement sets or guards on, with each row's stored value (in the order of the shape's ids). */
interface Term {
  column: string;
  type: string;
  op: string;
  stored: unknown[];
}

/** One statement's changes: the tasks, their move, the columns set and the guards beyond the status. */
interface Shape {
  ids: string[];
  to: TaskStatus;
  from: TaskStatus[];
  now: unknown;
  sets: Term[];
  guards: Term[];
  leaseNone: boolean;
}

/**
 * SQLite: the rows' own values as one JSON array of arrays (`[id, value…]`) joined by id, so the text depends only
 * on the shape and stays prepared, and one value is bound for all the rows (docs/BENCHMARKS.md, finding 38).
 */
function byJson(shape: Shape): [string, unknown[]] {
  // Each row is looked up by its id: the status term is written byKey, so that no index serves it.
  const terms = [...shape.sets, ...shape.guards];
  const pick = (t: Term) => `j.value->>${terms.indexOf(t) + 1}`;
  const rows = shape.ids.map((id, i) => [id, ...terms.map((t) => t.stored[i])]);
  const set = [...shape.sets.map((t) => `${t.column} = ${pick(t)}`), 'status = ?', 'updated_at = ?'];
  const guards = shape.guards.map((t) => ` AND tasks.${t.column} ${t.op} ${pick(t)}`).join('');
  return [
    `WITH j AS (SELECT value FROM json_each(?)) UPDATE tasks SET ${set.join(', ')}, last_sequence = last_sequence + 1 ` +
      `FROM j WHERE tasks.id = j.value->>0 AND ${byKey('tasks.status')} IN (${shape.from.map(() => '?').join(', ')})${guards}` +
      `${shape.leaseNone ? ' AND tasks.lease_id IS NULL' : ''} RETURNING *`,
    [JSON.stringify(rows), shape.to, shape.now, ...shape.from],
  ];
}

/**
 * PostgreSQL (and SQLite values JSON would change): `SET col = CASE id WHEN … THEN … END` where the values differ, a
 * plain value where they are the same, each row's guard picked the same way.
 */
function byCases(sql: Sql, shape: Shape): [string, unknown[]] {
  const params: unknown[] = [];
  // Placeholders are taken in the order they appear in the text (SQLite's ? are positional).
  const p = (value: unknown) => (params.push(value), sql.params(1, params.length));
  // One value per task, or the value they share. PostgreSQL types a CASE of parameters as text: cast it back.
  const valueOf = (t: Term) => {
    if (t.stored.every((v) => v === t.stored[0])) return p(t.stored[0]);
    const cases = `CASE id ${t.stored.map((v, i) => `WHEN ${p(shape.ids[i])} THEN ${p(v)}`).join(' ')} END`;
    return sql.postgres ? `CAST(${cases} AS ${t.type})` : cases;
  };
  const set = shape.sets.map((t) => `${t.column} = ${valueOf(t)}`);
  set.push(`status = ${p(shape.to)}`, `updated_at = ${p(shape.now)}`);
  let where = `id IN (${shape.ids.map(p).join(', ')}) AND status IN (${shape.from.map(p).join(', ')})`;
  for (const t of shape.guards) where += ` AND ${t.column} ${t.op} ${valueOf(t)}`;
  if (shape.leaseNone) where += ' AND lease_id IS NULL';
  return [`UPDATE tasks SET ${set.join(', ')}, last_sequence = last_sequence + 1 WHERE ${where} RETURNING *`, params];
}
