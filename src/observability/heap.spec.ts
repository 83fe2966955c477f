import { describe, expect, it } from 'vitest';
import { heapGrowingFlag } from './heap.js';

describe('heapGrowingFlag', () => {
  it('bounds growth by the percent asked for', () => {
    expect(heapGrowingFlag(100)).toBe('--heap-growing-percent=100');
    expect(heapGrowingFlag(50)).toBe('--heap-growing-percent=50');
  });

  it('leaves V8 its own heuristics at 0', () => {
    expect(heapGrowingFlag(0)).toBeUndefined();
  });
});
