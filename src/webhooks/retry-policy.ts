/** What one HTTP attempt came to, as the sender saw it. */
export interface AttemptResult {
  statusCode?: number;
  /** Network error, timeout, blocked address… (no status code then). */
  error?: string;
  /** True when the target's address is refused by the SSRF policy: never worth retrying. */
  blocked?: boolean;
  retryAfterMs?: number;
}

export type Verdict =
  | { outcome: 'succeeded' }
  | { outcome: 'retry'; delayMs: number; reason: string }
  | { outcome: 'failed'; reason: string; gone?: boolean };

const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/** Whether a response or error is worth another attempt (DESIGN §3): 408, 429, 5xx, redirects, timeouts and network errors. */
export function isRetryable(result: AttemptResult): boolean {
  if (result.blocked) return false;
  const code = result.statusCode;
  if (code === undefined) return true;
  if (code === 408 || code === 429) return true;
  if (code >= 500) return true;
  if (code >= 300 && code < 400) return true;
  return false;
}

/** ±10% jitter so that many deliveries failing together do not come back together. */
export function jitter(delayMs: number, random: () => number = Math.random): number {
  if (delayMs <= 0) return 0;
  return Math.max(0, Math.round(delayMs * (0.9 + 0.2 * random())));
}

/**
 * The delays before each attempt, per request within server limits: a request may give its own schedule, cap
 * the number of attempts, or both. Extra attempts past the schedule repeat its last delay.
 */
export function effectiveSchedule(serverSchedule: readonly number[], request?: { max_attempts?: number; schedule?: number[] } | null): number[] {
  const base = request?.schedule?.length ? request.schedule : serverSchedule;
  const attempts = request?.max_attempts ?? base.length;
  return Array.from({ length: attempts }, (_, i) => base[Math.min(i, base.length - 1)]);
}

/**
 * The decision after attempt number `attempt` (1-based) of a delivery with the given schedule: done, try again
 * after a delay (the schedule's, or the receiver's Retry-After when longer), or give up.
 */
export function decide(result: AttemptResult, attempt: number, schedule: readonly number[], random: () => number = Math.random): Verdict {
  const code = result.statusCode;
  if (code !== undefined && code >= 200 && code < 300) return { outcome: 'succeeded' };
  const reason = code !== undefined ? `HTTP ${code}` : (result.error ?? 'request failed');
  if (code === 410) return { outcome: 'failed', reason: 'HTTP 410 Gone: the receiver asked us to stop', gone: true };
  if (!isRetryable(result)) return { outcome: 'failed', reason };
  if (attempt >= schedule.length) return { outcome: 'failed', reason: `${reason}; gave up after ${attempt} attempts` };
  const scheduled = jitter(schedule[attempt], random);
  const asked = Math.min(result.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS);
  return { outcome: 'retry', delayMs: Math.max(scheduled, asked), reason };
}

/** Retry-After as delta-seconds or an HTTP date, in milliseconds from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
