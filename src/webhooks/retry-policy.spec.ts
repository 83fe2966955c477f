import { describe, expect, it } from 'vitest';
import {
  decide,
  effectiveSchedule,
  isPermanentError,
  isRetryable,
  jitter,
  parseRetryAfter,
  UNPREPARABLE,
} from './retry-policy.js';

const SCHEDULE = [0, 60_000, 300_000, 1_800_000, 7_200_000];
const noJitter = () => 0.5;

describe('retry policy', () => {
  it('succeeds on any 2xx', () => {
    for (const statusCode of [200, 201, 202, 204, 299])
      expect(decide({ statusCode }, 1, SCHEDULE, noJitter)).toEqual({ outcome: 'succeeded' });
  });

  it('retries 408, 429, 5xx, redirects, timeouts and network errors on the schedule', () => {
    for (const result of [
      { statusCode: 408 },
      { statusCode: 429 },
      { statusCode: 500 },
      { statusCode: 503 },
      { statusCode: 302 },
      { error: 'timeout of 30000ms exceeded' },
      { error: 'ECONNREFUSED' },
    ]) {
      expect(decide(result, 1, SCHEDULE, noJitter)).toMatchObject({ outcome: 'retry', delayMs: 60_000 });
    }
    expect(decide({ statusCode: 500 }, 3, SCHEDULE, noJitter)).toMatchObject({ outcome: 'retry', delayMs: 1_800_000 });
  });

  it('gives up after the last scheduled attempt', () => {
    expect(decide({ statusCode: 500 }, 5, SCHEDULE, noJitter)).toMatchObject({ outcome: 'failed' });
  });

  it('treats other 4xx as final and 410 as a request to stop', () => {
    expect(decide({ statusCode: 400 }, 1, SCHEDULE)).toMatchObject({ outcome: 'failed', reason: 'HTTP 400' });
    expect(decide({ statusCode: 404 }, 1, SCHEDULE)).toMatchObject({ outcome: 'failed' });
    expect(decide({ statusCode: 410 }, 1, SCHEDULE)).toMatchObject({ outcome: 'failed', gone: true });
  });

  it('never retries an address the SSRF policy refuses', () => {
    expect(isRetryable({ error: 'blocked', blocked: true })).toBe(false);
  });

  it('fails at once, on the first attempt, when the request cannot be prepared or sent (no retry can fix it)', () => {
    const undici = decide(
      { error: 'UND_ERR_INVALID_ARG: invalid x-foo header', errorCode: 'UND_ERR_INVALID_ARG' },
      1,
      SCHEDULE,
      noJitter,
    );
    expect(undici).toEqual({
      outcome: 'failed',
      reason: 'UND_ERR_INVALID_ARG: invalid x-foo header (not retried: no retry can fix it)',
    });
    const unpreparable = decide(
      {
        error: 'cannot prepare the request (signing secret): the sealed value does not decrypt',
        errorCode: UNPREPARABLE,
      },
      1,
      SCHEDULE,
      noJitter,
    );
    expect(unpreparable).toMatchObject({
      outcome: 'failed',
      reason: expect.stringContaining('cannot prepare the request'),
    });
  });

  it('classifies invalid-request codes as permanent and network or timeout codes as worth a retry', () => {
    for (const code of [
      UNPREPARABLE,
      'UND_ERR_INVALID_ARG',
      'UND_ERR_NOT_SUPPORTED',
      'ERR_INVALID_URL',
      'ERR_INVALID_CHAR',
    ])
      expect(isPermanentError(code), code).toBe(true);
    for (const code of [
      undefined,
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'ENOTFOUND',
      'EAI_AGAIN',
      'UND_ERR_SOCKET',
      'UND_ERR_CONNECT_TIMEOUT',
      'UND_ERR_HEADERS_TIMEOUT',
      'UND_ERR_BODY_TIMEOUT',
    ]) {
      expect(isPermanentError(code), code).toBe(false);
      expect(decide({ error: 'x', errorCode: code }, 1, SCHEDULE, noJitter)).toMatchObject({ outcome: 'retry' });
    }
    // An answer decides by its status code, whatever error came with it.
    expect(isRetryable({ statusCode: 503, errorCode: 'UND_ERR_INVALID_ARG' })).toBe(true);
  });

  it('honours a longer Retry-After on 429', () => {
    expect(decide({ statusCode: 429, retryAfterMs: 120_000 }, 1, SCHEDULE, noJitter)).toMatchObject({
      outcome: 'retry',
      delayMs: 120_000,
    });
    expect(decide({ statusCode: 429, retryAfterMs: 1_000 }, 1, SCHEDULE, noJitter)).toMatchObject({
      outcome: 'retry',
      delayMs: 60_000,
    });
  });

  it('adds at most ±10% jitter and none to an immediate attempt', () => {
    expect(jitter(0, () => 1)).toBe(0);
    expect(jitter(1_000, () => 0)).toBe(900);
    expect(jitter(1_000, () => 1)).toBe(1_100);
  });

  it('builds the per-request schedule within the server’s', () => {
    expect(effectiveSchedule(SCHEDULE)).toEqual(SCHEDULE);
    expect(effectiveSchedule(SCHEDULE, { max_attempts: 2 })).toEqual([0, 60_000]);
    expect(effectiveSchedule(SCHEDULE, { schedule: [0, 10] })).toEqual([0, 10]);
    expect(effectiveSchedule(SCHEDULE, { schedule: [0, 10], max_attempts: 4 })).toEqual([0, 10, 10, 10]);
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('120')).toBe(120_000);
    expect(parseRetryAfter(new Date(10_000 + 5_000).toUTCString(), 10_000)).toBe(5_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
