import { describe, expect, it } from 'vitest';
import { preferredWait } from './reply.js';

describe('Prefer: wait', () => {
  it('reads the wait preference among others', () => {
    expect(preferredWait('wait=5')).toBe(5);
    expect(preferredWait('respond-async, wait=10')).toBe(10);
    expect(preferredWait('return=minimal; wait="3"')).toBe(3);
  });

  it('clamps to 60 s and ignores what it cannot read', () => {
    expect(preferredWait('wait=600')).toBe(60);
    expect(preferredWait('wait=0')).toBeUndefined();
    expect(preferredWait('wait=soon')).toBeUndefined();
    expect(preferredWait('respond-async')).toBeUndefined();
    expect(preferredWait(undefined)).toBeUndefined();
  });
});
