import { describe, expect, it } from 'vitest';
import { formatCursor, parseCursor } from '../tasks/event-cursor.js';
import { matches, parseEventsQuery } from './stream-filter.js';

const A = '0190a0b0-0000-7000-8000-000000000001';
const B = '0190a0b0-0000-7000-8000-000000000002';

describe('event cursors on the wire', () => {
  it('compare the same as strings and as numbers', () => {
    const cursors = [1, 9, 10, 99, 100, 12_345_678].map(formatCursor);
    expect([...cursors].sort()).toEqual(cursors);
    expect(cursors.map(Number)).toEqual([1, 9, 10, 99, 100, 12_345_678]);
  });

  it('are read back padded or not, and anything else is refused', () => {
    expect(parseCursor('0000000000000042')).toBe(42);
    expect(parseCursor('42')).toBe(42);
    expect(parseCursor('-1')).toBeUndefined();
    expect(parseCursor('4.2')).toBeUndefined();
    expect(parseCursor('abc')).toBeUndefined();
    expect(parseCursor('12345678901234567')).toBeUndefined();
  });
});

describe('parseEventsQuery', () => {
  it('reads after, types, task_ids and limit', () => {
    const { query, errors } = parseEventsQuery({
      after: '0000000000000007',
      types: 'task.completed,task.failed',
      task_ids: `${A}, ${B}`,
      limit: '50',
    });
    expect(errors).toEqual([]);
    expect(query!.after).toBe(7);
    expect(query!.limit).toBe(50);
    expect(matches(query!.filter, { taskId: A, type: 'task.completed' })).toBe(true);
    expect(matches(query!.filter, { taskId: A, type: 'task.progress' })).toBe(false);
    expect(matches(query!.filter, { taskId: '0190a0b0-0000-7000-8000-000000000003', type: 'task.failed' })).toBe(false);
  });

  it('follows everything by default', () => {
    const { query } = parseEventsQuery({});
    expect(query).toEqual({ after: undefined, filter: { taskIds: '*', types: null }, limit: 100 });
  });

  it('names each bad field', () => {
    const { errors } = parseEventsQuery({ after: 'x', types: 'task.done', task_ids: 'nope', limit: '0' });
    expect(errors.map((e) => e.field)).toEqual(['after', 'types', 'task_ids', 'limit']);
    expect(errors[1].message).toContain('task.done');
  });
});
