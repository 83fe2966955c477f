export const TASK_EVENT_TYPES = [
  'task.queued',
  'task.started',
  'task.progress',
  'task.completed',
  'task.failed',
  'task.cancelled',
] as const;
// A timed-out task reports as task.failed with status "timedout": receivers treat both as a failure.
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number];

/** Every event a registered endpoint can subscribe to, with the JSON Schema of its envelope's `data`. */
const taskSnapshot = {
  type: 'object',
  description: 'The task as GET /v1/tasks/{id} shows it at the moment of the event (webhook header values masked).',
  required: ['task_id', 'status', 'progress', 'kind', 'model', 'created_at'],
  properties: {
    task_id: { type: 'string', format: 'uuid' },
    status: { enum: ['pending', 'processing', 'completed', 'failed', 'cancelled', 'timedout'] },
    progress: { type: 'integer', minimum: 0, maximum: 100 },
    message: { type: ['string', 'null'] },
    kind: { enum: ['video', 'image'] },
    model: { type: 'string' },
    prompt: { type: 'string' },
    result: {
      type: ['object', 'null'],
      properties: {
        created: { type: 'integer' },
        model: { type: 'string' },
        data: {
          type: 'array',
          items: {
            type: 'object',
            properties: { url: { type: 'string' }, b64_json: { type: 'string' }, metadata: { type: 'object' } },
          },
        },
      },
    },
    error: { type: ['string', 'null'] },
    error_code: { type: ['string', 'null'] },
    metadata: { type: ['object', 'null'] },
    created_at: { type: 'string', format: 'date-time' },
    updated_at: { type: 'string', format: 'date-time' },
    completed_at: { type: ['string', 'null'], format: 'date-time' },
  },
};

export const EVENT_CATALOGUE = [
  {
    type: 'task.queued',
    description: 'A task was accepted (or retried) and waits for a worker.',
    schema: taskSnapshot,
  },
  { type: 'task.started', description: 'A worker started generating.', schema: taskSnapshot },
  {
    type: 'task.progress',
    description: 'Generation progressed (superseded, never sent, when a newer event exists).',
    schema: taskSnapshot,
  },
  {
    type: 'task.completed',
    description: 'Generation finished; result.data[0].url is the artifact.',
    schema: taskSnapshot,
  },
  { type: 'task.failed', description: 'Generation failed or timed out (status "timedout").', schema: taskSnapshot },
  { type: 'task.cancelled', description: 'The task was cancelled.', schema: taskSnapshot },
  {
    type: 'webhook.test',
    description: 'Sent by POST /v1/webhooks/{id}/test to check an endpoint.',
    schema: {
      type: 'object',
      required: ['endpoint_id', 'message'],
      properties: { endpoint_id: { type: 'string' }, message: { type: 'string' } },
    },
  },
  {
    type: 'webhook.disabled',
    description: 'An endpoint of the tenant was disabled (410 Gone, or failing for ENDPOINT_DISABLE_AFTER_HOURS).',
    schema: {
      type: 'object',
      required: ['endpoint_id', 'url', 'reason', 'disabled_at'],
      properties: {
        endpoint_id: { type: 'string' },
        url: { type: 'string' },
        reason: { type: 'string' },
        disabled_at: { type: 'string', format: 'date-time' },
      },
    },
  },
] as const;

export const EVENT_TYPES: readonly string[] = EVENT_CATALOGUE.map((e) => e.type);
export const SUBSCRIBABLE = [...EVENT_TYPES, '*'];

/** The envelope every registered endpoint receives (seeds/000). */
export function envelope(id: string, type: string, created: Date, data: unknown): string {
  return JSON.stringify({ id, type, created: Math.floor(created.getTime() / 1000), data });
}
