import { describe, expect, it } from 'vitest';
import { activeSecrets, failingTooLong, subscribes } from './endpoint-rules.js';

describe('endpoint rules', () => {
  it('sends subscribed types, everything for *, and test events always', () => {
    expect(subscribes(['task.completed'], 'task.completed')).toBe(true);
    expect(subscribes(['task.completed'], 'task.progress')).toBe(false);
    expect(subscribes(['*'], 'task.progress')).toBe(true);
    expect(subscribes(['task.failed'], 'webhook.test')).toBe(true);
  });

  it('disables after continuous failure for the configured hours', () => {
    const now = new Date('2026-01-02T00:00:00Z');
    expect(failingTooLong(null, now, 120)).toBe(false);
    expect(failingTooLong(new Date('2026-01-01T00:00:00Z'), now, 120)).toBe(false);
    expect(failingTooLong(new Date('2025-12-27T23:00:00Z'), now, 120)).toBe(true);
  });

  it('signs with both secrets during the rotation overlap only', () => {
    const now = new Date(1_000);
    expect(activeSecrets('new', 'old', new Date(2_000), now)).toEqual(['new', 'old']);
    expect(activeSecrets('new', 'old', new Date(500), now)).toEqual(['new']);
    expect(activeSecrets('new', null, null, now)).toEqual(['new']);
  });
});
