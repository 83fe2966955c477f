import { describe, expect, it } from 'vitest';
import { gcra, rateBuckets } from './rate-limits.js';

describe('delivery rate limits', () => {
  it('spaces requests one interval apart and says how long the next must wait', () => {
    let tat = 0;
    const first = gcra(tat, 1_000, 50);
    expect(first).toEqual({ waitMs: 0, tat: 1_050 });
    tat = first.tat;
    expect(gcra(tat, 1_020, 50)).toEqual({ waitMs: 30, tat: 1_050 });
    expect(gcra(tat, 1_050, 50)).toEqual({ waitMs: 0, tat: 1_100 });
    // An idle bucket does not save up a burst.
    expect(gcra(1_100, 5_000, 50)).toEqual({ waitMs: 0, tat: 5_050 });
  });

  it('holds a delivery to its endpoint rate and its host rate, whichever are set', () => {
    expect(rateBuckets('p', 'http://a.example:81/x', { id: 'e1', rateLimitPerSecond: 20 }, null)).toEqual([{ key: 'p:rate:endpoint:e1', intervalMs: 50 }]);
    expect(rateBuckets('p', 'http://a.example:81/x', { id: 'e1', rateLimitPerSecond: null }, 4)).toEqual([{ key: 'p:rate:host:a.example:81', intervalMs: 250 }]);
    expect(rateBuckets('p', 'http://a.example/x', undefined, null)).toEqual([]);
  });
});
