import { describe, expect, it } from 'vitest';
import { gcra, rateBuckets, takeAll } from './rate-limits.js';

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
    expect(rateBuckets('p', 'http://a.example:81/x', { id: 'e1', rateLimitPerSecond: 20 }, null)).toEqual([
      { key: 'p:rate:endpoint:e1', intervalMs: 52.5 },
    ]);
    expect(rateBuckets('p', 'http://a.example:81/x', { id: 'e1', rateLimitPerSecond: null }, 4)).toEqual([
      { key: 'p:rate:host:a.example:81', intervalMs: 262.5 },
    ]);
    expect(rateBuckets('p', 'http://a.example/x', undefined, null)).toEqual([]);
  });
});

describe('a round of rate-limited requests', () => {
  it('takes the slots that come within the horizon and tells each held request when its place in line does', () => {
    const b = [{ key: 'e', intervalMs: 50 }];
    const tats = new Map<string, number>();
    expect(takeAll(tats, 1_000, 100, [b, b, b, b, b])).toEqual([
      { inMs: 0 },
      { inMs: 50 },
      { inMs: 100 },
      { heldMs: 50 },
      { heldMs: 100 },
    ]);
    expect(tats.get('e')).toBe(1_150);
    // A request waits for the later of its buckets' slots, and takes a slot in each.
    const host = { key: 'h', intervalMs: 100 };
    const two = new Map([['e', 1_100]]);
    expect(takeAll(two, 1_000, 0, [[b[0], host], [host], [b[0]]])).toEqual([
      { heldMs: 100 },
      { heldMs: 100 },
      { heldMs: 150 },
    ]);
    expect(takeAll(two, 1_000, 200, [[b[0], host], [host]])).toEqual([{ inMs: 100 }, { inMs: 200 }]);
    expect(two).toEqual(
      new Map([
        ['e', 1_150],
        ['h', 1_300],
      ]),
    );
  });
});
