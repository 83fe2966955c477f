import { describe, expect, it } from 'vitest';
import { mustWait } from './delivery-order.js';

const d = (id: string, taskId: string | null, sequence: number, target = 'request') => ({
  id,
  taskId,
  target,
  sequence,
});

describe('mustWait', () => {
  it('holds back a later event while an earlier one to the same target is on the wire', () => {
    expect(mustWait([d('b', 't1', 3)], [d('a', 't1', 2)])).toEqual(new Set(['b']));
  });

  it('lets only the earliest of one lane through when several arrive together', () => {
    expect(mustWait([d('c', 't1', 4), d('b', 't1', 3), d('x', 't2', 9)], [])).toEqual(new Set(['c']));
  });

  it('keeps targets and tasks apart, and never holds operational events', () => {
    expect(
      mustWait([d('b', 't1', 3, 'ep_1'), d('c', 't2', 3), d('op', null, 0)], [d('a', 't1', 2), d('z', null, 0)]),
    ).toEqual(new Set());
  });

  it('does not hold an event behind a later one', () => {
    expect(mustWait([d('a', 't1', 2)], [d('b', 't1', 3)])).toEqual(new Set());
  });
});
