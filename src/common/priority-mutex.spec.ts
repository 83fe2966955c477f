import { describe, expect, it } from 'vitest';
import { Turns } from './turns.js';

describe('Turns', () => {
  const tick = (ms = 2) => new Promise((r) => setTimeout(r, ms));

  it('runs one piece at a time; urgent work goes ahead, but never twice in a row while ordinary work waits', async () => {
    const turns = new Turns();
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
      turns.run(piece('a')),
      turns.run(piece('b')),
      turns.run(piece('c')),
      turns.run(piece('u1'), true),
      turns.run(piece('u2'), true),
      turns.run(piece('u3'), true),
    ];
    expect(await Promise.all(all)).toEqual(['a', 'b', 'c', 'u1', 'u2', 'u3']);
    expect(order).toEqual(['a', 'u1', 'b', 'u2', 'c', 'u3']);
  });

  it('answers each caller with its own result or error, and goes on after a failure, even a synchronous one', async () => {
    const turns = new Turns();
    const failing = turns.run(() => {
      throw new Error('at once');
    });
    const later = turns.run(async () => 'fine');
    await expect(failing).rejects.toThrow('at once');
    await expect(later).resolves.toBe('fine');
    await expect(turns.run(() => Promise.reject(new Error('async')), true)).rejects.toThrow('async');
    await expect(turns.run(async () => 42)).resolves.toBe(42);
  });
});
