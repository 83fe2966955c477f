// The wire shapes of Herald's worker protocol (docs/WORKERS.md, "Protocol") and the pure rules the SDK follows.
// No I/O here, so every rule has a unit test.

export type JobKind = 'video' | 'image';

/** One job of `POST /v1/worker/leases`, exactly as Herald sends it. */
export interface Job {
  lease_id: string;
  lease_seconds: number;
  lease_expires_at: string;
  task_id: string;
  attempt: number;
  kind: JobKind;
  model: string;
  prompt: string;
  params: Record<string, unknown>;
  /** Every key is present; null when the client did not send it. */
  options: {
    duration: number | null;
    size: string | null;
    fps: number | null;
    style: string | null;
    n: number | null;
    seed: number | null;
    response_format: 'url' | 'b64_json' | null;
  };
  /** The progress an earlier, lost lease had reported: start from here if the work allows it. */
  resume_from_percent: number;
}

/** One entry of `complete`'s `outputs`: an artifact uploaded under this lease, or a URL the worker hosts itself. */
export type Output = ({ artifact: string } | { url: string }) & {
  mime_type?: string;
  metadata?: Record<string, unknown>;
};

/** What a handler returns: the outputs, or the outputs with the prompt the model actually used. */
export type HandlerResult = Output[] | { outputs: Output[]; revised_prompt?: string };

export interface FailBody {
  error: string;
  code?: string;
  retryable?: boolean;
}

/**
 * Throw this from a handler to choose the task's `error_code` and whether Herald may give the job to a worker
 * again. Any error with a string `code` or boolean `retryable` property is read the same way.
 */
export class JobError extends Error {
  readonly code?: string;
  readonly retryable?: boolean;

  constructor(message: string, options: { code?: string; retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'JobError';
    this.code = options.code;
    this.retryable = options.retryable;
  }
}

/** The `fail` body for whatever a handler threw (a string, an Error, anything). */
export function failureBody(thrown: unknown): FailBody {
  const err = thrown as { message?: unknown; code?: unknown; retryable?: unknown } | null;
  const message =
    typeof thrown === 'string'
      ? thrown
      : typeof err?.message === 'string' && err.message
        ? err.message
        : String(thrown);
  const body: FailBody = { error: message.slice(0, 2_000) };
  // Herald takes codes of 1-64 letters, digits, _ . - (they become the task's error_code); others are left out.
  if (typeof err?.code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(err.code)) body.code = err.code;
  if (typeof err?.retryable === 'boolean') body.retryable = err.retryable;
  return body;
}

/** The `complete` body for what a handler returned; a clear error when it is not an outputs array. */
export function completeBody(result: unknown): { outputs: Output[]; revised_prompt?: string } {
  const wrapped = result !== null && typeof result === 'object' && !Array.isArray(result);
  const outputs = wrapped ? (result as { outputs?: unknown }).outputs : result;
  if (!Array.isArray(outputs) || outputs.length === 0) {
    throw new JobError('the handler must return a non-empty outputs array ([{artifact: name} | {url}, …])', {
      code: 'invalid_outputs',
      retryable: false,
    });
  }
  for (const o of outputs as unknown[]) {
    const out = o as { artifact?: unknown; url?: unknown } | null;
    if (out === null || typeof out !== 'object' || (typeof out.artifact !== 'string' && typeof out.url !== 'string')) {
      throw new JobError(`each output needs "artifact" (an uploaded name) or "url": got ${JSON.stringify(o)}`, {
        code: 'invalid_outputs',
        retryable: false,
      });
    }
  }
  const revised = wrapped ? (result as { revised_prompt?: unknown }).revised_prompt : undefined;
  const checked = outputs as Output[];
  return typeof revised === 'string' ? { outputs: checked, revised_prompt: revised } : { outputs: checked };
}

/** Heartbeats go three times per lease, so one lost or slow request never costs the lease. */
export function heartbeatEveryMs(leaseSeconds: number): number {
  return Math.max(50, Math.floor((leaseSeconds * 1000) / 3));
}

/** Exponential backoff with "equal jitter" (half fixed, half random, as in AWS's write-up) after `failures` consecutive failures (1 = the first). */
export function backoffMs(
  failures: number,
  { initialMs, maxMs }: { initialMs: number; maxMs: number },
  random = Math.random,
): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
