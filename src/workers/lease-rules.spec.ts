import { describe, expect, it } from 'vitest';
import { afterLostLease, leaseState, newLeaseId, taskOfLease, wholePercent } from './lease-rules.js';

const TASK = '019adbd6-2a3e-7d4c-9b1e-2f4a5c6d7e8f';

describe('lease rules', () => {
  it('names the task in the lease id, and refuses anything else', () => {
    const id = newLeaseId(TASK);
    expect(taskOfLease(id)).toBe(TASK);
    expect(newLeaseId(TASK)).not.toBe(id);
    expect(taskOfLease('nope')).toBeUndefined();
    expect(taskOfLease(`${TASK}_xyz`)).toBeUndefined();
  });

  it('tells a live lease from an expired, a replaced and a finished one', () => {
    const now = 1_000_000;
    const live = { status: 'processing' as const, leaseId: 'L', leaseTokenId: 'T', leaseExpiresAt: new Date(now + 1) };
    expect(leaseState(live, 'L', 'T', now)).toEqual({ kind: 'live' });
    expect(leaseState({ ...live, leaseExpiresAt: new Date(now) }, 'L', 'T', now).kind).toBe('gone');
    expect(leaseState({ ...live, leaseId: 'M' }, 'L', 'T', now).kind).toBe('gone');
    expect(leaseState({ ...live, leaseId: null }, 'L', 'T', now).kind).toBe('gone');
    expect(leaseState({ ...live, status: 'cancelled' }, 'L', 'T', now)).toEqual({
      kind: 'cancel',
      reason: 'cancelled',
    });
    expect(leaseState({ ...live, status: 'timedout', leaseExpiresAt: new Date(0) }, 'L', 'T', now)).toEqual({
      kind: 'cancel',
      reason: 'timedout',
    });
  });

  it('is gone to any worker token but the one that took it, even once the task is over', () => {
    const now = 1_000_000;
    const live = { status: 'processing' as const, leaseId: 'L', leaseTokenId: 'T', leaseExpiresAt: new Date(now + 1) };
    expect(leaseState(live, 'L', 'U', now)).toEqual({ kind: 'gone', why: 'the lease is held by another worker token' });
    expect(leaseState({ ...live, status: 'cancelled' }, 'L', 'U', now).kind).toBe('gone');
    // A lease taken before tokens were recorded answers any worker token.
    expect(leaseState({ ...live, leaseTokenId: null }, 'L', 'U', now)).toEqual({ kind: 'live' });
  });

  it('requeues a lost lease until the task has had WORKER_MAX_LEASES leases', () => {
    expect(afterLostLease(1, 3)).toBe('requeue');
    expect(afterLostLease(2, 3)).toBe('requeue');
    expect(afterLostLease(3, 3)).toBe('fail');
    expect(afterLostLease(1, 1)).toBe('fail');
  });

  it('stores progress as a whole percent within 0–100', () => {
    expect(wholePercent(42.9)).toBe(42);
    expect(wholePercent(100)).toBe(100);
    expect(wholePercent(0)).toBe(0);
  });
});
