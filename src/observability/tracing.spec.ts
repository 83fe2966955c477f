import { describe, expect, it } from 'vitest';
import { formatTraceparent, parseTraceparent, recordStep, startClientSpan, traceFields, tracingOn } from './tracing.js';

describe('traceparent', () => {
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('reads a W3C traceparent and writes it back the same', () => {
    const ctx = parseTraceparent(valid)!;
    expect(ctx).toMatchObject({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: 1,
      isRemote: true,
    });
    expect(formatTraceparent(ctx)).toBe(valid);
    expect(formatTraceparent(parseTraceparent(valid.replace(/01$/, '00'))!)).toBe(valid.replace(/01$/, '00'));
  });

  it('refuses what the spec calls invalid, so a new trace starts instead', () => {
    for (const bad of [
      undefined,
      '',
      'garbage',
      valid.toUpperCase(),
      valid.replace(/^00/, 'ff'),
      `${valid}-extra`,
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
    // A later version may append fields; its first four are read.
    expect(parseTraceparent(`01-${valid.slice(3)}-more`)?.spanId).toBe('00f067aa0ba902b7');
  });

  it('does nothing, and makes no span, while tracing is off', () => {
    expect(tracingOn()).toBe(false);
    expect(startClientSpan(valid, 'webhook task.completed', {})).toBeUndefined();
    expect(() => recordStep(valid, 'generation processing', Date.now(), {})).not.toThrow();
    expect(traceFields()).toEqual({});
  });
});
