import { describe, expect, it } from 'vitest';
import { PriorityMutex } from './priority-mutex.js';

describe('PriorityMutex', () => {
  const tick = (ms = 2) => new Promise((r) => setTimeout(r, ms));

  it('runs one piece at a time; urgent work goes ahead, but never twice in a row while ordinary work waits', async () => {
    const mutex = new PriorityMutex();
    const order: string[] = [];
    let running = 0;
    const piece = (name: string) => async () => {
      expect(++running).toBe(1);
      order.push(name);
      await tick();
      running--;
      return name;
    };
    const all = [
      mutex.run(piece('a')),
      mutex.run(piece('b')),
      mutex.run(piece('c')),
      mutex.run(piece('u1'), true),
      mutex.run(piece('u2'), true),
      mutex.run(piece('u3'), true),
    ];
    expect(await Promise.all(all)).toEqual(['a', 'b', 'c', 'u1', 'u2', 'u3']);
    expect(order).toEqual(['a', 'u1', 'b', 'u2', 'c', 'u3']);
  });

  it('answers each caller with its own result or error, and goes on after a failure, even a synchronous one', async () => {
    const mutex = new PriorityMutex();
    const failing = mutex.run(() => {
      throw new Error('at once');
    });
    const later = mutex.run(async () => 'fine');
    await expect(failing).rejects.toThrow('at once');
    await expect(later).resolves.toBe('fine');
    await expect(mutex.run(() => Promise.reject(new Error('async')), true)).rejects.toThrow('async');
    await expect(mutex.run(async () => 42)).resolves.toBe(42);
  });

  it('calls onIdle once the last waiting work has finished, not between two pieces of work', async () => {
    const idle: number[] = [];
    let done = 0;
    const mutex = new PriorityMutex(() => idle.push(done));
    const work = async () => {
      await new Promise((r) => setTimeout(r, 1));
      done++;
    };
    await Promise.all([mutex.run(work), mutex.run(work, true), mutex.run(work)]);
    await new Promise((r) => setImmediate(r));
    expect(idle).toEqual([3]);
    expect(mutex.busy).toBe(false);
  });
});
