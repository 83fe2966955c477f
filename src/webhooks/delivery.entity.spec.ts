import { describe, expect, it } from 'vitest';
import { Delivery, deliveryFromRow } from './delivery.entity.js';

const row = {
  id: 'd1',
  tenant_id: 't1',
  task_id: 'k1',
  event_id: 'e1',
  event_type: 'task.completed',
  sequence: 3,
  target: 'request',
  url: 'https://example.com/hook',
  headers_sealed: null,
  payload: '{"a":1}',
  status: 'pending',
  attempts: 1,
  schedule: '[0,60000]',
  next_attempt_at: 1_700_000_000_123,
  dispatched_at: null,
  last_status_code: 500,
  last_error: 'HTTP 500',
  created_at: 1_700_000_000_000,
  updated_at: 1_700_000_000_100,
  completed_at: null,
};

describe('deliveryFromRow', () => {
  it('reads a SQLite row (numbers) into a Delivery', () => {
    const d = deliveryFromRow(row);
    expect(d).toBeInstanceOf(Delivery);
    expect(d).toMatchObject({ id: 'd1', tenantId: 't1', taskId: 'k1', sequence: 3, attempts: 1, schedule: [0, 60_000], lastStatusCode: 500, dispatchedAt: null, completedAt: null });
    expect(d.nextAttemptAt.getTime()).toBe(1_700_000_000_123);
    expect(d.createdAt).toBeInstanceOf(Date);
  });

  it('reads a PostgreSQL row (bigint as text) the same way', () => {
    const d = deliveryFromRow({ ...row, next_attempt_at: '1700000000123', dispatched_at: '1700000000050', sequence: 3, task_id: null, last_status_code: null });
    expect(d.nextAttemptAt.getTime()).toBe(1_700_000_000_123);
    expect(d.dispatchedAt?.getTime()).toBe(1_700_000_000_050);
    expect(d.taskId).toBeNull();
    expect(d.lastStatusCode).toBeNull();
  });
});
