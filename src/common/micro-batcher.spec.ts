import { describe, expect, it } from 'vitest';
import { MicroBatcher } from './micro-batcher.js';

describe('MicroBatcher', () => {
  it('handles the items submitted together in one batch and answers each caller with its own result', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher(async (items: number[]) => {
      batches.push(items);
      return items.map((i) => i * 10);
    });
    expect(await Promise.all([1, 2, 3].map((i) => b.submit(i)))).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  it('collects what arrives during a round into the next batch, never more than the maximum', async () => {
    const batches: number[][] = [];
    const b = new MicroBatcher(async (items: number[]) => {
      batches.push(items);
      await new Promise((r) => setTimeout(r, 5));
      return items;
    }, 2);
    const first = b.submit(1);
    await new Promise((r) => setImmediate(r));
    const rest = [2, 3, 4].map((i) => b.submit(i));
    await Promise.all([first, ...rest]);
    expect(batches).toEqual([[1], [2, 3], [4]]);
  });

  it('fails only the bad item when a batch throws', async () => {
    const b = new MicroBatcher(async (items: number[]) => {
      if (items.includes(2)) throw new Error('bad 2');
      return items;
    });
    const results = await Promise.allSettled([1, 2, 3].map((i) => b.submit(i)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('bad 2');
  });

  it('runs up to maxLanes batches at once, the items arriving meanwhile going to the next free lane', async () => {
    let running = 0;
    let most = 0;
    const batches: number[][] = [];
    const b = new MicroBatcher(
      async (items: number[]) => {
        batches.push(items);
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 10));
        running--;
        return items;
      },
      128,
      2,
    );
    const first = b.submit(1);
    await new Promise((r) => setImmediate(r));
    const second = b.submit(2);
    await new Promise((r) => setImmediate(r));
    const third = b.submit(3);
    expect(await Promise.all([first, second, third])).toEqual([1, 2, 3]);
    expect(most).toBe(2);
    expect(batches).toEqual([[1], [2], [3]]);
  });
});
