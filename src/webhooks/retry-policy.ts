/** What one HTTP attempt came to, as the sender saw it. */
export interface AttemptResult {
  statusCode?: number;
  /** Network error, timeout, blocked address… (no status code then). */
  error?: string;
  /** True when the target's address is refused by the SSRF policy: never worth retrying. */
  blocked?: boolean;
  /** The error's code (undici's `UND_ERR_…`, Node's `E…`, or UNPREPARABLE), when the request failed without an answer. */
  errorCode?: string;
  retryAfterMs?: number;
}

/** Herald could not build the request at all (a stored secret or header value that does not decrypt). */
export const UNPREPARABLE = 'EUNPREPARABLE';

// The request itself can never be sent, so sending it again cannot help: Herald could not prepare it, or undici
// refused it before it left (an invalid header value, argument or body). Network and timeout codes are not here.
const PERMANENT_ERROR_CODES = new Set([
  UNPREPARABLE,
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'UND_ERR_INVALID_RETURN_VALUE',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'ERR_INVALID_URL',
  'ERR_INVALID_ARG_TYPE',
  'ERR_INVALID_ARG_VALUE',
  'ERR_INVALID_CHAR',
  'ERR_INVALID_HTTP_TOKEN',
  'ERR_HTTP_INVALID_HEADER_VALUE',
]);

/** Whether a failure without an answer is one no retry can fix (the request is wrong, not the network or receiver). */
export function isPermanentError(code: string | undefined): boolean {
  return code !== undefined && PERMANENT_ERROR_CODES.has(code);
}

export type Verdict =
  | { outcome: 'succeeded' }
  | { outcome: 'retry'; delayMs: number; reason: string }
  | { outcome: 'failed'; reason: string; gone?: boolean };

const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * Whether a response or error is worth another attempt (DESIGN §3): 408, 429, 5xx, redirects, timeouts and network
 * errors; never a blocked address or a request that cannot be sent (isPermanentError).
 */
export function isRetryable(result: AttemptResult): boolean {
  if (result.blocked) return false;
  const code = result.statusCode;
  if (code === undefined) return !isPermanentError(result.errorCode);
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
export function effectiveSchedule(
  serverSchedule: readonly number[],
  request?: { max_attempts?: number; schedule?: number[] } | null,
): number[] {
  const base = request?.schedule?.length ? request.schedule : serverSchedule;
  const attempts = request?.max_attempts ?? base.length;
  return Array.from({ length: attempts }, (_, i) => base[Math.min(i, base.length - 1)]);
}

/**
 * The decision after attempt number `attempt` (1-based) of a delivery with the given schedule: done, try again
 * after a delay (the schedule's, or the receiver's Retry-After when longer), or give up.
 */
export function decide(
  result: AttemptResult,
  attempt: number,
  schedule: readonly number[],
  random: () => number = Math.random,
): Verdict {
  const code = result.statusCode;
  if (code !== undefined && code >= 200 && code < 300) return { outcome: 'succeeded' };
  const reason = code !== undefined ? `HTTP ${code}` : (result.error ?? 'request failed');
  if (code === 410) return { outcome: 'failed', reason: 'HTTP 410 Gone: the receiver asked us to stop', gone: true };
  if (code === undefined && isPermanentError(result.errorCode))
    return { outcome: 'failed', reason: `${reason} (not retried: no retry can fix it)` };
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
