import type { Delivery, DeliveryAttempt } from './delivery.entity.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function deliveryView(d: Delivery) {
  return {
    id: d.id,
    task_id: d.taskId,
    event_id: d.eventId,
    event_type: d.eventType,
    sequence: d.sequence,
    target: d.target,
    url: d.url,
    status: d.status,
    attempts: d.attempts,
    max_attempts: d.schedule.length,
    next_attempt_at: d.status === 'pending' ? d.nextAttemptAt.toISOString() : null,
    last_status_code: d.lastStatusCode,
    last_error: d.lastError,
    batch_id: d.batchId,
    created_at: d.createdAt.toISOString(),
    updated_at: d.updatedAt.toISOString(),
    completed_at: iso(d.completedAt),
    payload: JSON.parse(d.payload) as unknown,
  };
}

export function attemptView(a: DeliveryAttempt) {
  return {
    number: a.number,
    started_at: a.startedAt.toISOString(),
    duration_ms: a.durationMs,
    status_code: a.statusCode,
    error: a.error,
    outcome: a.outcome,
    response_snippet: a.responseSnippet,
    request_headers: a.requestHeaders,
  };
}

/** The short form on a task: what happened last to its webhook. */
export function lastDeliveryView(d: Delivery | null) {
  return d
    ? {
        id: d.id,
        event_type: d.eventType,
        status: d.status,
        status_code: d.lastStatusCode,
        attempts: d.attempts,
        at: d.updatedAt.toISOString(),
      }
    : null;
}
