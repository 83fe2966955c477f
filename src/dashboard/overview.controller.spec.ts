import { describe, expect, it } from 'vitest';
import { perMinute } from './overview.controller.js';

describe('perMinute', () => {
  it('places the counts of each minute in its bucket, oldest first, and drops minutes outside the window', () => {
    const now = new Date('2026-01-01T12:00:30Z');
    const minute = Math.floor(now.getTime() / 60_000);
    const buckets = perMinute(
      [
        { minute, status: 'succeeded', n: 5 },
        { minute, status: 'failed', n: 2 },
        { minute: minute - 59, status: 'succeeded', n: 1 },
        { minute: minute - 60, status: 'succeeded', n: 9 },
      ],
      now,
    );
    expect(buckets).toHaveLength(60);
    expect(buckets[59]).toEqual({ minute: '2026-01-01T12:00:00.000Z', succeeded: 5, failed: 2 });
    expect(buckets[0]).toEqual({ minute: '2026-01-01T11:01:00.000Z', succeeded: 1, failed: 0 });
    expect(buckets.reduce((sum, b) => sum + b.succeeded + b.failed, 0)).toBe(8);
  });
});
