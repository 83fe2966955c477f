import { describe, expect, it } from 'vitest';
import { Semaphore } from './semaphore.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('Semaphore', () => {
  it('lets at most `limit` through at once and the rest in arrival order', async () => {
    const gate = new Semaphore(2);
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    const releases: Array<() => void> = [];
    const runs = [1, 2, 3, 4, 5].map((n) =>
      gate.run(async () => {
        inside++;
        most = Math.max(most, inside);
        order.push(n);
        await new Promise<void>((r) => releases.push(r));
        inside--;
        return n;
      }),
    );
    await tick();
    expect(order).toEqual([1, 2]);
    expect(gate.waiting).toBe(3);
    // Release whoever is inside, a bounded number of times, until everyone has passed.
    for (let i = 0; i < 10 && (releases.length || gate.waiting); i++) {
      releases.splice(0).forEach((release) => release());
      await tick();
    }
    expect(await Promise.all(runs)).toEqual([1, 2, 3, 4, 5]);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(most).toBe(2);
    expect(gate.waiting).toBe(0);
  });

  it('frees the place when the work throws', async () => {
    const gate = new Semaphore(1);
    await expect(gate.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await gate.run(async () => 'next')).toBe('next');
  });

  it('tells the work how long it waited for its place', async () => {
    const gate = new Semaphore(1);
    let release!: () => void;
    const holder = gate.run(() => new Promise<void>((r) => (release = r)));
    const waited = gate.run(async (ms) => ms);
    await new Promise((r) => setTimeout(r, 30));
    release();
    await holder;
    expect(await waited).toBeGreaterThanOrEqual(25);
    expect(await gate.run(async (ms) => ms)).toBeLessThan(25);
  });
});
