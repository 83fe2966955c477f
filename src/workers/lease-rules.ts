import { randomBytes } from 'node:crypto';
import { isTerminal } from '../tasks/task-state.js';
import type { Task } from '../tasks/task.entity.js';

/**
 * A lease id names its task: `<task id>_<24 hex>`. The task row holds the one live lease id, so a lookup needs no
 * lease table, and an id of a lease that ended still finds its task (410, not 404).
 */
export function newLeaseId(taskId: string): string {
  return `${taskId}_${randomBytes(12).toString('hex')}`;
}

const LEASE_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_[0-9a-f]{24}$/;

/** The task a lease id belongs to, or undefined when the text is not a lease id at all. */
export function taskOfLease(leaseId: string): string | undefined {
  return LEASE_ID.exec(leaseId)?.[1];
}

export type LeaseState =
  | { kind: 'live' }
  | { kind: 'cancel'; reason: 'cancelled' | 'timedout' | 'failed' | 'completed' }
  | { kind: 'gone'; why: string };

/**
 * What a lease is, as a worker presenting it with its token sees it. A lease answers only the worker token that
 * took it: to any other it is as good as gone (a lease from before tokens were recorded answers any).
 */
export function leaseState(
  task: Pick<Task, 'status' | 'leaseId' | 'leaseTokenId' | 'leaseExpiresAt'>,
  leaseId: string,
  tokenId: string,
  now: number,
): LeaseState {
  if (task.leaseId !== leaseId)
    return { kind: 'gone', why: 'the lease ended or the task was taken over by another lease' };
  if (task.leaseTokenId && task.leaseTokenId !== tokenId)
    return { kind: 'gone', why: 'the lease is held by another worker token' };
  if (isTerminal(task.status))
    return { kind: 'cancel', reason: task.status as 'cancelled' | 'timedout' | 'failed' | 'completed' };
  if (task.status !== 'processing' || !task.leaseExpiresAt || task.leaseExpiresAt.getTime() <= now) {
    return { kind: 'gone', why: 'the lease expired (it was not renewed within lease_seconds)' };
  }
  return { kind: 'live' };
}

/**
 * After a lease is lost (expired, or a retryable fail), the task goes back to the queue unless it has had
 * `maxLeases` leases already; then it fails.
 */
export function afterLostLease(leaseCount: number, maxLeases: number): 'requeue' | 'fail' {
  return leaseCount >= maxLeases ? 'fail' : 'requeue';
}

/** A heartbeat's progress: 0–100 as a whole percent (the task stores integers). */
export const wholePercent = (progress: number): number => Math.min(100, Math.max(0, Math.floor(progress)));

/** A leased job as the worker receives it: the wire shape of `POST /v1/worker/leases`. */
export function jobView(task: Task, leaseSeconds: number, resumeFromPercent: number) {
  const o = task.options;
  return {
    lease_id: task.leaseId,
    lease_seconds: leaseSeconds,
    lease_expires_at: task.leaseExpiresAt?.toISOString() ?? null,
    task_id: task.id,
    attempt: task.attempt,
    kind: task.kind,
    model: task.model,
    prompt: task.prompt,
    params: task.params,
    options: {
      duration: o.duration ?? null,
      size: o.size ?? null,
      fps: o.fps ?? null,
      style: o.style ?? null,
      n: o.n ?? null,
      seed: o.seed ?? null,
      response_format: o.response_format ?? null,
    },
    resume_from_percent: resumeFromPercent,
  };
}
