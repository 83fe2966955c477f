import { describe, expect, it } from 'vitest';
import { batchBody, batchLeavesAt, fillBatch, fillBatches } from './batch-rules.js';

const ev = (payload: string) => ({ payload });

describe('batch rules', () => {
  it('takes events in order up to max_events', () => {
    const { events, full } = fillBatch([ev('1'), ev('2'), ev('3')], 2, 1_000);
    expect(events.map((e) => e.payload)).toEqual(['1', '2']);
    expect(full).toBe(true);
    expect(fillBatch([ev('1')], 2, 1_000)).toEqual({ events: [ev('1')], full: false });
  });

  it('cuts a batch whose body would pass the byte cap, counting brackets and commas, and always sends one event', () => {
    const ten = 'x'.repeat(10);
    // [ + 10 + , + 10 + ] = 23 bytes for two; a third would make 34.
    const { events, full } = fillBatch([ev(ten), ev(ten), ev(ten)], 100, 33);
    expect(batchBody(events.map((e) => e.payload)).length).toBe(23);
    expect(events).toHaveLength(2);
    expect(full).toBe(true);
    expect(fillBatch([ev(ten), ev(ten)], 100, 23).events).toHaveLength(2);
    expect(fillBatch([ev('y'.repeat(50)), ev(ten)], 100, 20).events).toHaveLength(1);
    // Bytes, not characters.
    expect(fillBatch([ev('é'), ev('é')], 100, 6).events).toHaveLength(1);
  });

  it('lets a batch that is not full leave once its oldest event has waited max_wait_ms', () => {
    expect(batchLeavesAt([{ createdAt: new Date(2_000) }, { createdAt: new Date(1_000) }], 500)).toBe(1_500);
  });

  it('fills several batches at once, each up to max_events, only the last one not full', () => {
    const all = Array.from({ length: 7 }, (_, i) => ({ payload: String(i), taskId: null }));
    const { batches, full } = fillBatches(all, 3, 3, 1_000);
    expect(batches.map((b) => b.map((e) => e.payload))).toEqual([['0', '1', '2'], ['3', '4', '5'], ['6']]);
    expect(full).toBe(false);
    expect(fillBatches(all, 2, 3, 1_000)).toMatchObject({ batches: [{ length: 3 }, { length: 3 }], full: true });
    expect(fillBatches([], 4, 3, 1_000)).toEqual({ batches: [], full: true });
  });

  it('keeps a task in the first batch it is in: its later events wait for a later claim, others fill the room', () => {
    const ev2 = (payload: string, taskId: string | null) => ({ payload, taskId });
    const candidates = [ev2('a1', 'a'), ev2('b1', 'b'), ev2('a2', 'a'), ev2('c1', 'c'), ev2('n', null), ev2('a3', 'a')];
    const { batches } = fillBatches(candidates, 3, 2, 1_000);
    expect(batches.map((b) => b.map((e) => e.payload))).toEqual([
      ['a1', 'b1'],
      ['c1', 'n'],
    ]);
    // Cut by bytes, a task's next event is out of the next batch too.
    const ten = 'x'.repeat(10);
    const cut = fillBatches([ev2(ten, 'a'), ev2(ten, 'a'), ev2(ten, 'b')], 2, 100, 12);
    expect(cut.batches.map((b) => b.map((e) => e.taskId))).toEqual([['a'], ['b']]);
  });
});
