import { describe, expect, it } from 'vitest';
import { purgeIntervalMs } from './retention.service.js';

describe('purgeIntervalMs', () => {
  it('purges hourly for day-long retention, ten times per period for a tiny one, at most every second', () => {
    expect(purgeIntervalMs(30)).toBe(3_600_000);
    expect(purgeIntervalMs(0.002)).toBe(17_280);
    expect(purgeIntervalMs(0.0001)).toBe(1_000);
  });
});
