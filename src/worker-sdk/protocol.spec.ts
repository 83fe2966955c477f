import { describe, expect, it } from 'vitest';
import { backoffMs, completeBody, failureBody, heartbeatEveryMs, JobError } from './protocol.js';

describe('failureBody', () => {
  it('sends the message, and code and retryable when the error carries them', () => {
    expect(failureBody(new JobError('GPU out of memory', { code: 'oom', retryable: true }))).toEqual({
      error: 'GPU out of memory',
      code: 'oom',
      retryable: true,
    });
    expect(failureBody(Object.assign(new Error('nsfw'), { code: 'content_policy', retryable: false }))).toEqual({
      error: 'nsfw',
      code: 'content_policy',
      retryable: false,
    });
  });

  it('reads a plain Error, a thrown string or anything else, without inventing a code', () => {
    expect(failureBody(new Error('boom'))).toEqual({ error: 'boom' });
    expect(failureBody('bad prompt')).toEqual({ error: 'bad prompt' });
    expect(failureBody(42)).toEqual({ error: '42' });
    expect(failureBody(Object.assign(new Error('x'), { code: 5 }))).toEqual({ error: 'x' });
    expect(failureBody(Object.assign(new Error('x'), { code: 'has spaces' }))).toEqual({ error: 'x' });
    expect(failureBody(new Error('e'.repeat(3_000))).error).toHaveLength(2_000);
  });
});

describe('completeBody', () => {
  it('takes an outputs array or {outputs, revised_prompt}', () => {
    expect(completeBody([{ artifact: 'a.png', mime_type: 'image/png' }])).toEqual({
      outputs: [{ artifact: 'a.png', mime_type: 'image/png' }],
    });
    expect(completeBody({ outputs: [{ url: 'https://cdn/x.mp4' }], revised_prompt: 'p2' })).toEqual({
      outputs: [{ url: 'https://cdn/x.mp4' }],
      revised_prompt: 'p2',
    });
  });

  it('refuses what Herald could not complete with, as a non-retryable invalid_outputs', () => {
    for (const bad of [undefined, [], [{}], [{ name: 'a.png' }], 'a.png', { outputs: null }]) {
      expect(() => completeBody(bad)).toThrow(JobError);
      try {
        completeBody(bad);
      } catch (err) {
        expect(err).toMatchObject({ code: 'invalid_outputs', retryable: false });
      }
    }
  });
});

describe('heartbeatEveryMs', () => {
  it('beats three times per lease, never faster than every 50 ms', () => {
    expect(heartbeatEveryMs(30)).toBe(10_000);
    expect(heartbeatEveryMs(0.5)).toBe(166);
    expect(heartbeatEveryMs(0.01)).toBe(50);
  });
});

describe('backoffMs', () => {
  const policy = { initialMs: 500, maxMs: 30_000 };
  it('doubles from initialMs with jitter between half and all of the step', () => {
    expect(backoffMs(1, policy, () => 0)).toBe(250);
    expect(backoffMs(1, policy, () => 1)).toBe(500);
    expect(backoffMs(3, policy, () => 1)).toBe(2_000);
  });
  it('never waits longer than maxMs, however many failures', () => {
    expect(backoffMs(1_000, policy, () => 1)).toBe(30_000);
    expect(backoffMs(1_000, policy, () => 0)).toBe(15_000);
  });
});
