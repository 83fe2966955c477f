import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeraldHttpError, WorkerClient, type UploadBody } from './client.js';
import {
  backoffMs,
  completeBody,
  failureBody,
  heartbeatEveryMs,
  JobError,
  type FailBody,
  type HandlerResult,
  type Job,
  type JobKind,
} from './protocol.js';

/** Why a job's `ctx.signal` was aborted: Herald cancelled it (or it timed out), its lease was lost, or the worker is stopping. */
export class LeaseEndedError extends Error {
  constructor(
    readonly reason: 'cancelled' | 'lost' | 'shutdown',
    detail: string,
  ) {
    super(`lease ended (${reason}): ${detail}`);
    this.name = 'LeaseEndedError';
  }
}

export interface JobContext {
  /** Reports progress (0-100) and a message; sent at once as a heartbeat (coalesced while one is on the wire). */
  progress(percent: number, message?: string): Promise<void>;
  /** Streams an artifact to Herald under this lease; name it in an output as `{artifact: name}`. */
  upload(name: string, data: UploadBody, mimeType: string): Promise<{ url: string }>;
  /** Aborted when the task is cancelled or timed out, the lease is lost, or the worker stops; `reason` is a LeaseEndedError. */
  signal: AbortSignal;
}

export type Handler = (job: Job, ctx: JobContext) => HandlerResult | Promise<HandlerResult>;

export type LogLevel = 'info' | 'warn' | 'error';

export interface WorkerOptions {
  url: string;
  token: string;
  /** Model ids or globs (`minimax-*`) this worker serves. */
  models: string[];
  kinds?: JobKind[];
  /** Jobs run at the same time (default 1). */
  concurrency?: number;
  /** Shown to operators in `herald workers list` (default host-pid). */
  workerId?: string;
  handler: Handler;
  /** Aborting it stops the worker gracefully, as stop() does. */
  signal?: AbortSignal;
  /** How long one lease request may wait for a job (0-60 s, default 30). */
  waitSeconds?: number;
  /** On stop, how long running jobs may take before they are handed back to Herald (default 30 s). */
  stopTimeoutMs?: number;
  /** Backoff after a failed request to Herald (default 500 ms doubling up to 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  log?: (level: LogLevel, message: string) => void;
}

export interface RunningWorker {
  /** Stops taking jobs, lets running ones finish for `graceMs` (default stopTimeoutMs), then hands the rest back. */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** Settles once the worker has stopped and every job it held is finished or handed back. */
  done: Promise<void>;
  /** Jobs running now. */
  readonly running: number;
}

interface RunningJob {
  done: Promise<void>;
  shutdown(): Promise<void>;
}

const defaultLog = (level: LogLevel, message: string) => process.stderr.write(`herald worker ${level}: ${message}\n`);

/**
 * Pulls jobs for `models` from Herald and runs `handler` on each: long-polls for as many jobs as it has free slots,
 * heartbeats each lease for the handler, and completes or fails it with what the handler returned or threw.
 * Network errors and 5xx answers back off and retry; it never throws.
 */
export function runWorker(options: WorkerOptions): RunningWorker {
  if (!options.url || !options.token) throw new TypeError('runWorker needs url and token');
  if (!options.models?.length) throw new TypeError('runWorker needs at least one model');
  if (typeof options.handler !== 'function') throw new TypeError('runWorker needs a handler function');
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const waitSeconds = Math.min(60, Math.max(0, options.waitSeconds ?? 30));
  const backoff = options.backoff ?? { initialMs: 500, maxMs: 30_000 };
  const workerId = options.workerId ?? `${hostname()}-${process.pid}`;
  const log = options.log ?? defaultLog;
  const client = new WorkerClient(options.url, options.token);
  const running = new Map<string, RunningJob>();
  const poll = new AbortController();
  let stopping = false;
  let forceTimer: NodeJS.Timeout | undefined;
  let wake: () => void = () => undefined;

  async function leaseLoop(): Promise<void> {
    let failures = 0;
    while (!stopping) {
      if (running.size >= concurrency) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      try {
        const jobs = await client.lease(
          {
            worker_id: workerId,
            models: options.models,
            ...(options.kinds ? { kinds: options.kinds } : {}),
            max_jobs: Math.min(32, concurrency - running.size),
            wait_seconds: waitSeconds,
          },
          poll.signal,
        );
        failures = 0;
        for (const job of jobs) start(job);
      } catch (err) {
        if (stopping) break;
        const delay = backoffMs(++failures, backoff);
        log('warn', `lease request failed (${describe(err)}); retrying in ${delay} ms`);
        await sleep(delay, undefined, { signal: poll.signal }).catch(() => undefined);
      }
    }
  }

  function start(job: Job): void {
    log(
      'info',
      `job ${job.task_id} (${job.model}, attempt ${job.attempt}) leased${job.resume_from_percent ? `, resuming from ${job.resume_from_percent}%` : ''}`,
    );
    const entry = runJob(client, job, options.handler, log);
    running.set(job.lease_id, entry);
    void entry.done.finally(() => {
      running.delete(job.lease_id);
      wake();
    });
  }

  const loop = leaseLoop();
  const done = (async () => {
    await loop;
    while (running.size) await Promise.all([...running.values()].map((j) => j.done));
    clearTimeout(forceTimer);
    client.close();
  })();

  const stop = (stopOptions: { graceMs?: number } = {}): Promise<void> => {
    stopping = true;
    poll.abort();
    wake();
    clearTimeout(forceTimer);
    forceTimer = setTimeout(
      () => {
        for (const job of running.values()) void job.shutdown();
      },
      stopOptions.graceMs ?? options.stopTimeoutMs ?? 30_000,
    );
    return done;
  };
  if (options.signal?.aborted) void stop();
  options.signal?.addEventListener('abort', () => void stop(), { once: true });

  return {
    stop,
    done,
    get running() {
      return running.size;
    },
  };
}

/** One leased job: heartbeats, the handler, and exactly one complete or fail unless the lease ended first. */
function runJob(
  client: WorkerClient,
  job: Job,
  handler: Handler,
  log: (level: LogLevel, message: string) => void,
): RunningJob {
  const controller = new AbortController();
  let ended: LeaseEndedError | undefined;
  let report: { progress?: number; message?: string } = {};
  let inFlight: Promise<void> | undefined;
  let again = false;
  let lastAcknowledged = Date.now();
  let shutdownFailed: Promise<void> | undefined;
  let resolveShutdown: () => void = () => undefined;
  const shutdown = new Promise<void>((resolve) => (resolveShutdown = resolve));

  const end = (reason: LeaseEndedError['reason'], detail: string) => {
    if (ended) return;
    ended = new LeaseEndedError(reason, detail);
    clearInterval(timer);
    controller.abort(ended);
  };

  // One heartbeat on the wire at a time; progress reported meanwhile goes out right after it.
  const beat = (fresh: boolean): Promise<void> => {
    if (ended) return Promise.resolve();
    if (inFlight) {
      again ||= fresh;
      return inFlight;
    }
    inFlight = (async () => {
      do {
        again = false;
        try {
          const answer = await client.heartbeat(job.lease_id, report);
          lastAcknowledged = Date.now();
          if (answer.cancel) end('cancelled', answer.reason ?? 'cancelled');
        } catch (err) {
          if (err instanceof HeraldHttpError && (err.status === 410 || err.status === 404)) end('lost', err.message);
          else if (Date.now() - lastAcknowledged > job.lease_seconds * 1000)
            end('lost', `no heartbeat got through within the lease (${describe(err)})`);
          else log('warn', `heartbeat for ${job.task_id} failed (${describe(err)}); trying again`);
        }
      } while (again && !ended);
    })().finally(() => (inFlight = undefined));
    return inFlight;
  };
  const timer = setInterval(() => void beat(false), heartbeatEveryMs(job.lease_seconds));

  const ctx: JobContext = {
    signal: controller.signal,
    progress: (percent, message) => {
      report = {
        progress: Math.round(Math.min(100, Math.max(0, Number(percent) || 0))),
        ...(message !== undefined ? { message: String(message) } : {}),
      };
      return beat(true);
    },
    upload: (name, data, mimeType) => client.upload(job.lease_id, name, data, mimeType, controller.signal),
  };

  const finish = async (): Promise<void> => {
    const outcome = await Promise.race([
      (async () => {
        try {
          return { result: completeBody(await handler(job, ctx)) };
        } catch (thrown) {
          return { thrown };
        }
      })(),
      shutdown.then(() => undefined),
    ]);
    clearInterval(timer);
    await inFlight;
    if (!outcome) return shutdownFailed;
    if (ended) {
      log('info', `job ${job.task_id} dropped: ${ended.message}`);
      return;
    }
    if ('result' in outcome && outcome.result) {
      try {
        await settle(client, log, job, 'complete', () => client.complete(job.lease_id, outcome.result));
        log('info', `job ${job.task_id} completed`);
      } catch (err) {
        // Herald refused the outputs (an unknown artifact name, say): the task fails with the reason, not silently.
        if (err instanceof HeraldHttpError && err.status === 422)
          await sendFail({
            error: `Herald refused the outputs: ${err.message}`.slice(0, 2_000),
            code: 'invalid_outputs',
            retryable: false,
          });
      }
      return;
    }
    await sendFail(failureBody(outcome.thrown));
  };

  const sendFail = async (body: FailBody) => {
    await settle(client, log, job, 'fail', () => client.fail(job.lease_id, body)).catch(() => undefined);
    log('info', `job ${job.task_id} failed: ${body.error}${body.retryable ? ' (retryable)' : ''}`);
  };

  return {
    done: finish(),
    shutdown: () => {
      if (!shutdownFailed && !ended) {
        end('shutdown', 'the worker is stopping');
        shutdownFailed = sendFail({
          error: 'the worker stopped before the job finished',
          code: 'worker_stopped',
          retryable: true,
        });
      }
      resolveShutdown();
      return shutdownFailed ?? Promise.resolve();
    },
  };
}

/**
 * Sends complete or fail, retrying network errors and 5xx a few times. A 404/410 means the lease is gone (expired,
 * cancelled, or already settled by an earlier try whose answer was lost): nothing more to do. Other 4xx rethrow.
 */
async function settle(
  client: WorkerClient,
  log: (level: LogLevel, message: string) => void,
  job: Job,
  what: string,
  send: () => Promise<unknown>,
): Promise<void> {
  for (let failures = 1; ; failures++) {
    try {
      await send();
      return;
    } catch (err) {
      if (err instanceof HeraldHttpError && (err.status === 404 || err.status === 410)) {
        log('warn', `${what} for ${job.task_id}: the lease is no longer held (${err.message})`);
        return;
      }
      const retry = !(err instanceof HeraldHttpError) || err.status >= 500 || err.status === 429;
      if (!retry || failures >= 5) {
        log('error', `${what} for ${job.task_id} failed: ${describe(err)}`);
        throw err;
      }
      await sleep(backoffMs(failures, { initialMs: 250, maxMs: 5_000 }));
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof HeraldHttpError || err instanceof JobError) return err.message;
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${e?.message ?? String(err)}${cause ? ` (${cause})` : ''}`;
}
