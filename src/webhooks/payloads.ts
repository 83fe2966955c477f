import type { TaskEventType } from '../events/event-catalogue.js';

export const MAX_PAYLOAD_BYTES = 1_048_576;

/** What a payload needs to know about the task and the event; taken from the same transaction as the event. */
export interface EventFacts {
  eventId: string;
  type: TaskEventType;
  sequence: number;
  createdAt: Date;
  task: {
    id: string;
    kind: 'video' | 'image';
    status: string;
    progress: number;
    message: string | null;
    model: string;
    prompt: string;
    error: string | null;
    // The part of a task's result a payload reads; written here so delivery needs no import of tasks/.
    result: { data: Array<{ url?: string }> } | null;
    metadata: Record<string, unknown> | null;
    startedAt: Date | null;
    completedAt: Date | null;
    estimatedDurationMs: number;
  };
}

/** What delivery reads of a task: what its payloads report, and its webhook_url settings (tasks/ owns the Task). */
export type TaskFacts = EventFacts['task'] & {
  tenantId: string;
  webhookUrl: string | null;
  webhookHeadersSealed: string | null;
  webhookEvents: string[] | null;
  webhookRetry: { max_attempts?: number; schedule?: string[] } | null;
};

/**
 * One task event handed to delivery in the transaction that wrote it. `snapshot` is the task as GET /v1/tasks/{id}
 * shows it, the `data` of an endpoint's envelope; made only when an endpoint subscribes.
 */
export interface TaskEventEntry {
  task: TaskFacts;
  event: { id: string; type: TaskEventType; sequence: number; createdAt: Date };
  snapshot: () => unknown;
}

/** Which per-request `webhook_events` name an event answers to; undefined for events Conduit does not send. */
export function requestEventName(type: TaskEventType): 'progress' | 'completed' | 'failed' | 'cancelled' | undefined {
  switch (type) {
    case 'task.progress':
      return 'progress';
    case 'task.completed':
      return 'completed';
    case 'task.failed':
      return 'failed';
    case 'task.cancelled':
      return 'cancelled';
    default:
      return undefined;
  }
}

export const isTerminalEvent = (type: TaskEventType) =>
  type === 'task.completed' || type === 'task.failed' || type === 'task.cancelled';

function generationSeconds(task: EventFacts['task']): number | undefined {
  if (!task.startedAt || !task.completedAt) return undefined;
  return Math.round((task.completedAt.getTime() - task.startedAt.getTime()) / 100) / 10;
}

function imageUrls(task: EventFacts['task']): string[] {
  return (task.result?.data ?? []).flatMap((d) => (d.url ? [d.url] : []));
}

/**
 * The per-request webhook body, exactly Conduit's (seeds/001) plus `event_id`, `event_type`, `sequence` and
 * `metadata`. Images use `image_generation_*` and `image_url`, and also carry `image_urls` (every image's URL), the
 * field Conduit's server sends, so receivers written against either one find the images.
 */
export function conduitPayload(facts: EventFacts): Record<string, unknown> | undefined {
  const { task } = facts;
  const name = requestEventName(facts.type);
  if (!name) return undefined;
  const prefix = task.kind === 'video' ? 'video_generation' : 'image_generation';
  const common = { task_id: task.id, status: task.status };
  const added = {
    event_id: facts.eventId,
    sequence: facts.sequence,
    ...(task.metadata ? { metadata: task.metadata } : {}),
  };
  const timestamp = facts.createdAt.toISOString();
  if (name === 'progress') {
    const webhookType = `${prefix}_progress`;
    return {
      ...common,
      webhook_type: webhookType,
      timestamp,
      progress_percentage: task.progress,
      message: task.message,
      estimated_seconds_remaining: Math.ceil((task.estimatedDurationMs * (100 - task.progress)) / 100 / 1000),
      event_type: webhookType,
      ...added,
    };
  }
  const webhookType = `${prefix}_completed`;
  const url = task.result?.data[0]?.url ?? null;
  return {
    ...common,
    webhook_type: webhookType,
    timestamp,
    ...(name !== 'completed'
      ? { error: task.error }
      : task.kind === 'video'
        ? { video_url: url }
        : { image_url: url, image_urls: imageUrls(task) }),
    ...(generationSeconds(task) !== undefined ? { generation_duration_seconds: generationSeconds(task) } : {}),
    model: task.model,
    prompt: task.prompt,
    event_type: webhookType,
    ...added,
  };
}

/** Serializes once; the stored string is what is signed and sent on every attempt. Never over 1 MB. */
export function serializePayload(payload: Record<string, unknown>): string {
  let body = JSON.stringify(payload);
  if (Buffer.byteLength(body) > MAX_PAYLOAD_BYTES && 'metadata' in payload) {
    body = JSON.stringify({ ...payload, metadata: { truncated: true } });
  }
  if (Buffer.byteLength(body) > MAX_PAYLOAD_BYTES && 'data' in payload) {
    body = JSON.stringify({ ...payload, data: { truncated: true } });
  }
  return body;
}
