import { describe, expect, it } from 'vitest';
import { lanesAfterRound, laneWaits, mustWait } from './delivery-order.js';

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

describe('lanesAfterRound', () => {
  const open = (
    id: string,
    task: string,
    sequence: number,
    status: 'pending' | 'sending',
    due = 0,
    target = 'request',
  ) => ({
    ...d(id, task, sequence, target),
    status,
    eventType: id.endsWith('!') ? 'task.started' : 'task.progress',
    nextAttemptAt: due,
  });
  const fresh = (id: string, task: string, sequence: number, due: number, target = 'request') => ({
    ...d(id, task, sequence, target),
    nextAttemptAt: new Date(due),
  });

  it('reads what is on the wire, and for each fresh delivery when the earliest earlier event of its lane comes due', () => {
    const { onWire, earlierDue } = lanesAfterRound(
      [fresh('t1-5', 't1', 5, 500), fresh('t1-6', 't1', 6, 600), fresh('t2-3', 't2', 3, 300)],
      [
        open('t1-1', 't1', 1, 'sending'),
        // Progress older than the lane's newest fresh event is superseded by the round: it holds nothing back.
        open('t1-2', 't1', 2, 'pending', 200),
        open('t1-9', 't1', 9, 'pending', 900),
        open('t2-1!', 't2', 1, 'pending', 250),
        open('t2-2', 't2', 2, 'pending', 220),
        // Another target is another lane.
        open('t2-0', 't2', 0, 'pending', 150, 'ep_1'),
      ],
    );
    expect(onWire.map((o) => o.id)).toEqual(['t1-1']);
    expect(earlierDue).toEqual(
      new Map([
        ['t1-6', 500],
        ['t2-3', 250],
      ]),
    );
  });

  it('finds nothing earlier in lanes that hold only the round’s first event', () => {
    expect(lanesAfterRound([fresh('a', 't1', 1, 100)], []).earlierDue).toEqual(new Map());
  });
});
