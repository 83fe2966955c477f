import { describe, expect, it } from 'vitest';
import { describeBody, formatLine, formatSummary } from './listen.js';

describe('herald listen output', () => {
  it('describes Conduit payloads and envelopes', () => {
    expect(describeBody({ task_id: 't1', status: 'processing', webhook_type: 'video_generation_progress', sequence: 4 })).toEqual({ type: 'video_generation_progress', taskId: 't1', sequence: 4, status: 'processing' });
    expect(describeBody({ id: 'e', type: 'task.completed', created: 1, data: { task_id: 't2', status: 'completed' } })).toMatchObject({ type: 'task.completed', taskId: 't2', status: 'completed' });
    expect(describeBody(undefined).type).toBe('unknown');
  });

  it('prints one readable line per event', () => {
    const line = formatLine({ at: new Date('2026-01-01T12:00:01.123Z'), type: 'video_generation_completed', taskId: 't1', sequence: 12, status: 'completed', attempt: 2, signature: { invalid: 'invalid_signature' }, answer: 200 });
    expect(line).toContain('12:00:01.123');
    expect(line).toContain('task=t1');
    expect(line).toContain('seq=12');
    expect(line).toContain('attempt=2');
    expect(line).toContain('signature=INVALID (invalid_signature)');
  });

  it('sums up', () => {
    expect(formatSummary({ received: 3, valid: 2, invalid: 1, unverified: 0, simulatedFailures: 1, duplicates: 1 })).toBe(
      'received 3 webhooks: 2 valid, 1 invalid, 0 unverified; 1 simulated failures; 1 repeats of an earlier webhook-id',
    );
  });
});
