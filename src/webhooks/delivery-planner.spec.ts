import { describe, expect, it } from 'vitest';
import { supersededInBatch } from './delivery-planner.js';

const row = (taskId: string | null, target: string, sequence: number, eventType: string) =>
  ({ taskId, target, sequence, eventType }) as never;

describe('supersededInBatch', () => {
  it('marks progress overtaken by a newer event of the same task and target in the same batch', () => {
    const rows = [
      row('t1', 'request', 4, 'task.progress'),
      row('t1', 'request', 5, 'task.completed'),
      row('t1', 'ep1', 4, 'task.progress'),
      row('t2', 'request', 3, 'task.progress'),
    ];
    expect([...supersededInBatch(rows)]).toEqual([[0, 5]]);
  });

  it('never marks the newest, non-progress events, or events without a task', () => {
    const rows = [
      row('t1', 'request', 2, 'task.started'),
      row('t1', 'request', 3, 'task.progress'),
      row(null, 'ep1', 0, 'task.progress'),
      row(null, 'ep1', 0, 'webhook.test'),
    ];
    expect(supersededInBatch(rows).size).toBe(0);
  });
});
