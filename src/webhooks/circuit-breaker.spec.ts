import { describe, expect, it } from 'vitest';
import {
  admit,
  afterAttempt,
  Circuit,
  circuitView,
  CLOSED,
  cooldownMs,
  isTargetFailure,
  MAX_COOLDOWN_MS,
} from './circuit-breaker.js';

const s = { failures: 3, cooldownMs: 1_000, probeTimeoutMs: 5_000 };
const at = (ms: number) => new Date(ms);

function fail(c: Circuit, times: number, now = 0): { circuit: Circuit; opened: number } {
  let opened = 0;
  for (let i = 0; i < times; i++) {
    const r = afterAttempt(c, true, at(now), s);
    c = r.circuit;
    if (r.opened) opened++;
  }
  return { circuit: c, opened };
}

describe('circuit breaker', () => {
  it('stays closed below the threshold and opens on the failure that reaches it', () => {
    expect(fail(CLOSED, 2).circuit).toMatchObject({ state: 'closed', failures: 2 });
    const { circuit, opened } = fail(CLOSED, 3, 100);
    expect(opened).toBe(1);
    expect(circuit).toMatchObject({ state: 'open', openings: 1, until: at(1_100) });
  });

  it('a success closes it and forgets the streak', () => {
    const c = fail(CLOSED, 2).circuit;
    expect(afterAttempt(c, false, at(0), s).circuit).toEqual(CLOSED);
  });

  it('holds deliveries during the cool-down, then lets exactly one probe through', () => {
    const open = fail(CLOSED, 3).circuit;
    expect(admit(open, at(500), s)).toEqual({ admit: 'hold', until: at(1_000) });
    const probe = admit(open, at(1_000), s);
    expect(probe).toMatchObject({ admit: 'probe', circuit: { state: 'half_open', until: at(6_000) } });
    const halfOpen = (probe as { circuit: Circuit }).circuit;
    const held = admit(halfOpen, at(1_000), s);
    expect(held.admit).toBe('hold');
    // A probe that never reports (its worker died) is replaced after its deadline.
    expect(admit(halfOpen, at(6_000), s).admit).toBe('probe');
  });

  it('a failed probe opens it again for twice as long, up to 10 minutes', () => {
    const open = fail(CLOSED, 3).circuit;
    const halfOpen = (admit(open, at(1_000), s) as { circuit: Circuit }).circuit;
    const again = afterAttempt(halfOpen, true, at(1_200), s);
    expect(again.opened).toBe(true);
    expect(again.circuit).toMatchObject({ state: 'open', openings: 2, until: at(3_200) });
    expect(cooldownMs(30, 30_000)).toBe(MAX_COOLDOWN_MS);
  });

  it('failures of requests already on the wire when it opened do not extend it', () => {
    const open = fail(CLOSED, 3).circuit;
    expect(afterAttempt(open, true, at(900), s)).toEqual({ circuit: open, opened: false });
  });

  it('counts no answer, timeouts, 408, 429 and 5xx as failures of the target, not other answers', () => {
    expect(isTargetFailure({ error: 'ECONNREFUSED' })).toBe(true);
    expect(isTargetFailure({ statusCode: 503 })).toBe(true);
    expect(isTargetFailure({ statusCode: 429 })).toBe(true);
    expect(isTargetFailure({ statusCode: 400 })).toBe(false);
    expect(isTargetFailure({ statusCode: 204 })).toBe(false);
    expect(isTargetFailure({ error: 'blocked', blocked: true })).toBe(false);
  });

  it('shows an open circuit past its cool-down as half open', () => {
    const open = fail(CLOSED, 3).circuit;
    expect(circuitView(open, at(500))).toEqual({ circuit: 'open', circuit_until: at(1_000).toISOString() });
    expect(circuitView(open, at(1_500)).circuit).toBe('half_open');
    expect(circuitView(undefined)).toEqual({ circuit: 'closed', circuit_until: null });
  });
});
