import { describe, expect, it } from 'vitest';
import { laneWaits, mustWait } from './delivery-order.js';

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

describe('laneWaits (how long a delivery waits for its lane)', () => {
  const now = 1_000_000;
  const d = (id: string, taskId: string | null, sequence: number, target = '*') => ({ id, taskId, target, sequence });

  it('looks again soon while an earlier event of its lane is on the wire or claimed with it', () => {
    const waits = laneWaits([d('a2', 'a', 2), d('b1', 'b', 1), d('b2', 'b', 2)], [d('x', 'a', 1)], new Map(), now, 20);
    expect([...waits]).toEqual([
      ['a2', 20],
      ['b2', 20],
    ]);
  });

  it('waits until an earlier pending event of its lane is due (a retry, a hold), at least the short wait', () => {
    const earlierDue = new Map([
      ['a3', now + 30_000],
      ['c2', now - 5],
    ]);
    const waits = laneWaits([d('a3', 'a', 3), d('c2', 'c', 2), d('e1', 'e', 1)], [], earlierDue, now, 20);
    expect([...waits]).toEqual([
      ['a3', 30_000],
      ['c2', 20],
    ]);
  });

  it('never holds an event that belongs to no task', () => {
    expect(laneWaits([d('op', null, 0)], [], new Map([['op', now + 1_000]]), now, 20).size).toBe(0);
  });
});
