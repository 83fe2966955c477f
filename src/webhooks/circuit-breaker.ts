import type { AttemptResult } from './retry-policy.js';

export type CircuitStateName = 'closed' | 'open' | 'half_open';

/**
 * One target URL's circuit. `until` is the end of the cool-down while open, and the deadline of the probe while
 * half open (a probe whose worker died is replaced after it). `openings` counts openings since it last closed: each
 * one doubles the cool-down.
 */
export interface Circuit {
  state: CircuitStateName;
  failures: number;
  openings: number;
  until: Date | null;
}

export interface CircuitSettings {
  failures: number;
  cooldownMs: number;
  /** How long a probe may take before another one is let through (the webhook timeout plus a margin). */
  probeTimeoutMs: number;
}

export const MAX_COOLDOWN_MS = 10 * 60_000;
// While a probe is on the wire the others look again this soon, so they follow a successful probe quickly.
export const HALF_OPEN_RECHECK_MS = 200;

export const CLOSED: Circuit = { state: 'closed', failures: 0, openings: 0, until: null };

/** Whether an attempt's result says the target is unwell: no answer, a timeout, 408, 429 or 5xx. */
export function isTargetFailure(result: AttemptResult): boolean {
  if (result.blocked) return false;
  const code = result.statusCode;
  if (code === undefined) return true;
  return code === 408 || code === 429 || code >= 500;
}

export function cooldownMs(openings: number, baseMs: number): number {
  return Math.min(MAX_COOLDOWN_MS, baseMs * 2 ** Math.max(0, openings - 1));
}

/**
 * The circuit after one attempt's result. Any answer that is not a target failure closes it (the receiver is up);
 * the failure that reaches the threshold, or a failed probe, opens it for a cool-down that doubles each time.
 * Failures of requests already on the wire when it opened change nothing.
 */
export function afterAttempt(
  c: Circuit,
  failed: boolean,
  now: Date,
  s: CircuitSettings,
): { circuit: Circuit; opened: boolean } {
  if (!failed) return { circuit: CLOSED, opened: false };
  if (c.state === 'open') return { circuit: c, opened: false };
  const failures = c.failures + 1;
  if (c.state === 'half_open' || failures >= s.failures) {
    const openings = c.openings + 1;
    return {
      circuit: {
        state: 'open',
        failures,
        openings,
        until: new Date(now.getTime() + cooldownMs(openings, s.cooldownMs)),
      },
      opened: true,
    };
  }
  return { circuit: { ...c, failures }, opened: false };
}

export type Admission = { admit: 'send' } | { admit: 'probe'; circuit: Circuit } | { admit: 'hold'; until: Date };

/**
 * Whether a delivery to this target may go now: always while closed; while open it is held until the cool-down
 * ends, then one delivery is let through as the probe (the circuit becomes half open); while the probe is out the
 * others are held, unless the probe outlived its deadline (another one goes).
 */
export function admit(c: Circuit, now: Date, s: CircuitSettings): Admission {
  if (c.state === 'closed') return { admit: 'send' };
  const until = c.until?.getTime() ?? 0;
  const t = now.getTime();
  if (c.state === 'open' && t < until) return { admit: 'hold', until: c.until! };
  if (c.state === 'half_open' && t < until)
    return { admit: 'hold', until: new Date(Math.min(until, t + HALF_OPEN_RECHECK_MS)) };
  return { admit: 'probe', circuit: { ...c, state: 'half_open', until: new Date(t + s.probeTimeoutMs) } };
}

/** The circuit as the API shows it: an open circuit whose cool-down is over lets its next delivery probe. */
export function circuitView(
  c: Circuit | undefined,
  now = new Date(),
): { circuit: CircuitStateName; circuit_until: string | null } {
  if (!c || c.state === 'closed') return { circuit: 'closed', circuit_until: null };
  const state = c.state === 'open' && c.until && c.until.getTime() <= now.getTime() ? 'half_open' : c.state;
  return { circuit: state, circuit_until: c.until?.toISOString() ?? null };
}
