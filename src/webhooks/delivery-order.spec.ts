import { describe, expect, it } from 'vitest';
import { claimableAtBirth, mustWait } from './delivery-order.js';

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

describe('claimableAtBirth', () => {
  const row = (id: string, taskId: string, sequence: number, status: string, eventType = 'task.started') => ({
    ...d(id, taskId, sequence),
    status,
    eventType,
  });

  it('claims the first new event of each lane when nothing earlier is on the wire or pending', () => {
    expect(
      claimableAtBirth([d('0', 't1', 3), d('1', 't2', 2), d('2', 't1', 4)], [row('x', 't1', 1, 'succeeded')], 10),
    ).toEqual(new Set(['0', '1']));
  });

  it('leaves an event to the ordinary claim while an earlier one of its lane is sending or pending', () => {
    expect(
      claimableAtBirth(
        [d('0', 't1', 3), d('1', 't2', 3)],
        [row('a', 't1', 2, 'sending'), row('b', 't2', 2, 'pending')],
        10,
      ),
    ).toEqual(new Set());
  });

  it('does not wait for pending progress, which the same transaction supersedes', () => {
    expect(claimableAtBirth([d('0', 't1', 5)], [row('p', 't1', 4, 'pending', 'task.progress')], 10)).toEqual(
      new Set(['0']),
    );
  });

  it('ignores later rows and other targets, and takes no more than the room', () => {
    expect(
      claimableAtBirth(
        [d('0', 't1', 3), d('1', 't2', 3), d('2', 't3', 3)],
        [row('a', 't1', 4, 'sending'), { ...row('b', 't2', 2, 'sending'), target: 'ep_1' }],
        2,
      ),
    ).toEqual(new Set(['0', '1']));
  });

  it('never claims an operational event this way', () => {
    expect(claimableAtBirth([d('op', null, 0)], [], 10)).toEqual(new Set());
  });
});
