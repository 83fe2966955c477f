import { describe, expect, it } from 'vitest';
import { wavesOf } from './task-transitions.service.js';

describe('wavesOf', () => {
  it('puts the k-th change of each task in wave k, keeping the order given', () => {
    expect(wavesOf(['a', 'b', 'a', 'c', 'a', 'b'])).toEqual([[0, 1, 3], [2, 5], [4]]);
  });

  it('is one wave when every task changes once, and none for an empty round', () => {
    expect(wavesOf(['a', 'b', 'c'])).toEqual([[0, 1, 2]]);
    expect(wavesOf([])).toEqual([]);
  });
});
