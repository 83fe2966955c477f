import { describe, expect, it } from 'vitest';
import { shutdownMessage } from './shutdown-report.js';

describe('shutdownMessage', () => {
  it('says what was handed back, finished and given back, in words an operator reads', () => {
    expect(
      shutdownMessage({ generationHandedBack: 3, webhooksFinished: 1, webhooksGivenBack: 0, durationMs: 412 }),
    ).toBe(
      'shutdown: handed back 3 generation jobs, finished 1 webhook request on the wire, gave back 0 unsent webhook deliveries (412 ms)',
    );
  });
});
