/** The task state machine, in one place: every status change in Herald is checked here. */
export const TASK_STATUSES = ['pending', 'processing', 'completed', 'failed', 'cancelled', 'timedout'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled', 'timedout'];

const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  pending: ['processing', 'failed', 'cancelled', 'timedout'],
  processing: ['processing', 'completed', 'failed', 'cancelled', 'timedout'],
  completed: [],
  // A failed or timed-out task may be retried: it starts a new attempt from pending.
  failed: ['pending'],
  timedout: ['pending'],
  cancelled: [],
};

export function isTerminal(status: TaskStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The statuses a task may be in for `to` to be reached; used as the guard of a conditional UPDATE. */
export function sourcesOf(to: TaskStatus): TaskStatus[] {
  return TASK_STATUSES.filter((from) => canTransition(from, to));
}

export const isCancellable = (status: TaskStatus) => canTransition(status, 'cancelled');
export const isRetryable = (status: TaskStatus) => canTransition(status, 'pending');
