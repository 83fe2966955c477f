import { describe, expect, it } from 'vitest';
import { countTicks, minuteTicks } from './chart-scale';

describe('countTicks', () => {
  it('counts in ones for small numbers, up to the maximum', () => {
    expect(countTicks(3)).toEqual([0, 1, 2, 3]);
    expect(countTicks(0)).toEqual([0, 1]);
  });
  it('uses round steps that reach past the maximum', () => {
    expect(countTicks(37)).toEqual([0, 10, 20, 30, 40]);
    expect(countTicks(101)).toEqual([0, 50, 100, 150]);
    expect(countTicks(7)).toEqual([0, 2, 4, 6, 8]);
  });
  it('never steps below one, as counts are whole', () => {
    expect(countTicks(1.5)).toEqual([0, 1, 2]);
  });
});

describe('minuteTicks', () => {
  const hour = Array.from({ length: 60 }, (_, i) => new Date(Date.UTC(2026, 0, 1, 10, i + 1)).toISOString());
  const labelled = (ticks: number[]) => ticks.map((i) => new Date(hour[i]).getMinutes());
  it('labels every 10 minutes when there is room, on round minutes of the hour', () => {
    const ticks = minuteTicks(hour, 10);
    expect(ticks).toHaveLength(6);
    expect(labelled(ticks).every((m) => m % 10 === 0)).toBe(true);
  });
  it('labels less often on a narrow chart', () => {
    const ticks = minuteTicks(hour, 3);
    expect(ticks).toHaveLength(3);
    expect(labelled(ticks).every((m) => m % 20 === 0)).toBe(true);
  });
});
