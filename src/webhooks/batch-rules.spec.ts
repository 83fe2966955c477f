import { describe, expect, it } from 'vitest';
import { batchBody, batchLeavesAt, fillBatch } from './batch-rules.js';

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
});
