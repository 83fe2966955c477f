import { redactHeaders } from '../webhooks/webhook-headers.js';
import { isTerminal } from './task-state.js';
import type { Task, TaskKind } from './task.entity.js';

/** Where a client polls a task: the Conduit route for its kind. */
export function statusPath(kind: TaskKind, id: string): string {
  return kind === 'video' ? `/v1/videos/generations/tasks/${id}` : `/v1/images/generations/${id}/status`;
}

export function remainingSeconds(task: Pick<Task, 'status' | 'progress' | 'estimatedDurationMs'>): number {
  if (isTerminal(task.status)) return 0;
  return Math.ceil((task.estimatedDurationMs * (100 - task.progress)) / 100 / 1000);
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The 202 answer to a create: what Conduit's SDK reads, plus the estimate in seconds. */
export function createdView(task: Task, baseUrl: string) {
  return {
    task_id: task.id,
    status: task.status,
    created_at: task.createdAt.toISOString(),
    estimated_completion_time: new Date(task.createdAt.getTime() + task.estimatedDurationMs).toISOString(),
    estimated_time_to_completion: remainingSeconds(task),
    check_status_url: baseUrl + statusPath(task.kind, task.id),
  };
}

export type WebhookSummary = {
  url: string;
  headers: Record<string, string>;
  events: string[] | null;
  last_delivery: unknown;
};

/** The task object: Conduit's polling shape first, then Herald's fields. Header values never appear. */
export function taskView(task: Task, baseUrl: string, lastDelivery: unknown = null) {
  return {
    task_id: task.id,
    status: task.status,
    progress: task.progress,
    message: task.message,
    estimated_time_to_completion: remainingSeconds(task),
    created_at: task.createdAt.toISOString(),
    updated_at: task.updatedAt.toISOString(),
    completed_at: iso(task.completedAt),
    check_status_url: baseUrl + statusPath(task.kind, task.id),
    result: task.result,
    error: task.error,
    kind: task.kind,
    model: task.model,
    prompt: task.prompt,
    params: { ...task.options, ...task.params },
    metadata: task.metadata,
    started_at: iso(task.startedAt),
    error_code: task.errorCode,
    attempt: task.attempt,
    timeout_seconds: task.timeoutSeconds,
    webhook: task.webhookUrl
      ? ({
          url: task.webhookUrl,
          headers: redactHeaders(task.webhookHeaderNames ?? []),
          events: task.webhookEvents,
          last_delivery: lastDelivery,
        } satisfies WebhookSummary)
      : null,
  };
}

export type TaskView = ReturnType<typeof taskView>;

/** How long a poller should wait before asking again: about one progress step, 1–10 s. Undefined once terminal. */
export function pollAfterSeconds(task: Pick<Task, 'status' | 'estimatedDurationMs'>): number | undefined {
  if (isTerminal(task.status)) return undefined;
  return Math.min(10, Math.max(1, Math.ceil(task.estimatedDurationMs / 10 / 1000)));
}
