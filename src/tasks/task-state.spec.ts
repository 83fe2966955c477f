import { describe, expect, it } from 'vitest';
import { canTransition, isCancellable, isRetryable, isTerminal, sourcesOf, TASK_STATUSES } from './task-state.js';

describe('task state machine', () => {
  it('moves pending → processing → completed', () => {
    expect(canTransition('pending', 'processing')).toBe(true);
    expect(canTransition('processing', 'processing')).toBe(true); // progress
    expect(canTransition('processing', 'completed')).toBe(true);
  });

  it('never leaves completed or cancelled', () => {
    for (const to of TASK_STATUSES) {
      expect(canTransition('completed', to)).toBe(false);
      expect(canTransition('cancelled', to)).toBe(false);
    }
  });

  it('does not complete a task that never started', () => {
    expect(canTransition('pending', 'completed')).toBe(false);
  });

  it('lets only failed and timed-out tasks be retried', () => {
    expect(TASK_STATUSES.filter(isRetryable)).toEqual(['failed', 'timedout']);
  });

  it('lets only unfinished tasks be cancelled', () => {
    expect(TASK_STATUSES.filter(isCancellable)).toEqual(['pending', 'processing']);
  });

  it('knows the terminal statuses', () => {
    expect(TASK_STATUSES.filter(isTerminal)).toEqual(['completed', 'failed', 'cancelled', 'timedout']);
  });

  it('derives the guard of each conditional update from the table', () => {
    expect(sourcesOf('cancelled')).toEqual(['pending', 'processing']);
    expect(sourcesOf('pending')).toEqual(['failed', 'timedout']);
    expect(sourcesOf('timedout')).toEqual(['pending', 'processing']);
  });
});
