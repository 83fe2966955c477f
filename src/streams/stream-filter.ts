import { parseCursor } from '../tasks/event-cursor.js';
import { TASK_EVENT_TYPES, type TaskEventType } from '../tasks/task-event.entity.js';
import type { FieldError } from '../common/errors.js';

/** Which of a tenant's events a reader wants: all tasks or a set of them, all types or some. */
export interface StreamFilter {
  taskIds: ReadonlySet<string> | '*';
  types: ReadonlySet<TaskEventType> | null;
}

export const MAX_FILTER_TASK_IDS = 1_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function matches(filter: StreamFilter, event: { taskId: string; type: TaskEventType }): boolean {
  return (
    (filter.taskIds === '*' || filter.taskIds.has(event.taskId)) && (!filter.types || filter.types.has(event.type))
  );
}

/** Every event of the tenant: no task or type filter. */
export function wantsAll(filter: StreamFilter): boolean {
  return filter.taskIds === '*' && !filter.types;
}

/** Comma list or array → trimmed, non-empty items. */
function items(value: string | readonly unknown[]): unknown[] {
  return typeof value === 'string'
    ? value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [...value];
}

/** Event types as the query (`types=task.completed,task.failed`) or a WebSocket message gives them. */
export function parseTypes(
  value: unknown,
  field = 'types',
): { types: Set<TaskEventType> | null; errors: FieldError[] } {
  if (value === undefined || value === null || value === '') return { types: null, errors: [] };
  if (typeof value !== 'string' && !Array.isArray(value))
    return { types: null, errors: [{ field, message: 'must be a comma-separated list of event types' }] };
  const list = items(value);
  const unknown = list.filter((t) => typeof t !== 'string' || !(TASK_EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length)
    return {
      types: null,
      errors: [
        { field, message: `unknown event type ${JSON.stringify(unknown[0])}; known: ${TASK_EVENT_TYPES.join(', ')}` },
      ],
    };
  return { types: list.length ? new Set(list as TaskEventType[]) : null, errors: [] };
}

/** Task ids as a comma list or an array of UUIDs (at most MAX_FILTER_TASK_IDS). */
export function parseTaskIds(
  value: unknown,
  field = 'task_ids',
): { taskIds: Set<string> | null; errors: FieldError[] } {
  if (value === undefined || value === null || value === '') return { taskIds: null, errors: [] };
  if (typeof value !== 'string' && !Array.isArray(value))
    return { taskIds: null, errors: [{ field, message: 'must be a comma-separated list of task ids' }] };
  const list = items(value);
  const bad = list.find((id) => typeof id !== 'string' || !UUID.test(id));
  if (bad !== undefined)
    return { taskIds: null, errors: [{ field, message: `${JSON.stringify(bad)} is not a task id` }] };
  if (list.length > MAX_FILTER_TASK_IDS)
    return { taskIds: null, errors: [{ field, message: `at most ${MAX_FILTER_TASK_IDS} task ids` }] };
  return { taskIds: new Set((list as string[]).map((id) => id.toLowerCase())), errors: [] };
}

export function parseAfter(value: unknown, field = 'after'): { after: number | undefined; errors: FieldError[] } {
  if (value === undefined || value === null || value === '') return { after: undefined, errors: [] };
  const after =
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
      ? value
      : typeof value === 'string'
        ? parseCursor(value)
        : undefined;
  if (after === undefined)
    return {
      after: undefined,
      errors: [{ field, message: 'must be a cursor (the decimal digits of an event’s cursor)' }],
    };
  return { after, errors: [] };
}

export interface EventsQuery {
  after: number | undefined;
  filter: StreamFilter;
  limit: number;
}

/** `GET /v1/events` and `/v1/events/stream` parameters, validated together (each problem names its field). */
export function parseEventsQuery(
  query: Record<string, unknown>,
  { defaultLimit = 100, maxLimit = 1_000 } = {},
): { query?: EventsQuery; errors: FieldError[] } {
  const single = (name: string): unknown =>
    Array.isArray(query[name]) ? (query[name] as unknown[]).join(',') : query[name];
  const { after, errors: e1 } = parseAfter(single('after'));
  const { types, errors: e2 } = parseTypes(single('types'));
  const { taskIds, errors: e3 } = parseTaskIds(single('task_ids'));
  const errors = [...e1, ...e2, ...e3];
  let limit = defaultLimit;
  const rawLimit = single('limit');
  if (rawLimit !== undefined && rawLimit !== '') {
    const n = Number(rawLimit);
    if (!Number.isInteger(n) || n < 1 || n > maxLimit)
      errors.push({ field: 'limit', message: `must be an integer from 1 to ${maxLimit}` });
    else limit = n;
  }
  if (errors.length) return { errors };
  return { query: { after, filter: { taskIds: taskIds ?? '*', types }, limit }, errors };
}
