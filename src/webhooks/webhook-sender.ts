import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { lookup as dnsLookup, LookupAddress } from 'node:dns';
import { Agent } from 'undici';
import { Semaphore } from '../common/semaphore.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import type { Cidr } from '../config/cidrs.js';
import { checkWebhookUrl, isAddressAllowed } from './address-policy.js';
import { AttemptResult, parseRetryAfter } from './retry-policy.js';

export const RESPONSE_SNIPPET_BYTES = 1_024;
// Read at most this much of a response so the keep-alive socket can be reused; past it the socket is dropped.
const MAX_RESPONSE_READ = 64 * 1_024;

export interface OutgoingRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
}

export interface SendResult extends AttemptResult {
  startedAt: Date;
  durationMs: number;
  responseSnippet?: string;
}

class BlockedAddressError extends Error {
  readonly code = 'EBLOCKED';
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * DNS lookup that refuses blocked addresses. The socket connects to the address checked here, so a name that
 * resolves differently a moment later (DNS rebinding) cannot slip through.
 */
export function guardedLookup(allowed: readonly Cidr[]) {
  return (hostname: string, options: { family?: number; all?: boolean } | number, callback: LookupCallback): void => {
    const opts = typeof options === 'number' ? { family: options } : options;
    dnsLookup(hostname, { family: opts.family ?? 0, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const usable = addresses.filter((a) => isAddressAllowed(a.address, allowed));
      if (usable.length === 0) {
        return callback(
          new BlockedAddressError(
            `${hostname} resolves to ${addresses.map((a) => a.address).join(', ')}, which webhooks may not reach`,
          ),
          '',
        );
      }
      if (opts.all) return callback(null, usable);
      callback(null, usable[0].address, usable[0].family);
    });
  };
}

type Outcome = Omit<SendResult, 'startedAt' | 'durationMs'>;

/**
 * What a failed request comes to: blocked by the address policy (never retried), or an error with its code, which
 * the retry policy reads (a request undici refuses to send is final, a network error is retried).
 */
function failure(err: unknown): Outcome {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code;
  if (code === 'EBLOCKED') return { error: `blocked: ${e.cause?.message ?? e.message}`, blocked: true };
  return { error: `${code ?? 'error'}: ${e.message ?? 'request failed'}`, ...(code ? { errorCode: code } : {}) };
}

/** A header's value from undici's raw list (name, value, name, value…), names compared case-insensitively. */
function rawHeader(raw: Buffer[] | string[] | null | undefined, name: string): string | undefined {
  for (let i = 0; raw && i + 1 < raw.length; i += 2)
    if (raw[i].toString().toLowerCase() === name) return raw[i + 1].toString();
  return undefined;
}

/**
 * The one outbound HTTP client: keep-alive pools per origin, a timeout, no redirects, no proxies, and a DNS
 * lookup that refuses private and special addresses. Knows nothing of tasks or deliveries.
 *
 * Built on undici (the HTTP client behind Node's fetch) rather than axios: measured on this machine, axios spent
 * ~400 µs of CPU per POST against ~100 µs for undici, and the sender is on the path of every webhook
 * (docs/BENCHMARKS.md). undici follows no redirects and reads no proxy settings unless told to.
 */
@Injectable()
export class WebhookSender implements OnApplicationShutdown {
  private readonly allowed: Cidr[];
  private readonly dispatcher: Agent;
  // WEBHOOK_CONCURRENCY is the number of requests on the wire; the worker may hold more jobs than that.
  private readonly onTheWire: Semaphore;

  constructor(@Inject(CONFIG) private readonly config: HeraldConfig) {
    this.allowed = config.webhook.allowedCidrs;
    this.onTheWire = new Semaphore(config.webhook.concurrency);
    const timeout = config.webhook.timeoutMs;
    this.dispatcher = new Agent({
      connections: 256,
      // Every connect goes through the guarded lookup (IP literals are checked by checkWebhookUrl first).
      connect: { lookup: guardedLookup(this.allowed) as never, timeout },
      // The attempt's deadline below is the real limit; these only keep undici from waiting longer on its own.
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  }

  /** Sends a request already built, once a place on the wire is free. */
  send(request: OutgoingRequest): Promise<SendResult> {
    return this.sendWhenPlaced(() => Promise.resolve(request)) as Promise<SendResult>;
  }

  /**
   * Waits for a place on the wire, then asks `build` for the request (so what is time-sensitive in it, such as a
   * signature's timestamp, is made at the moment it leaves) and sends it. `build` may answer null to send nothing.
   */
  sendWhenPlaced(build: (waitedMs: number) => Promise<OutgoingRequest | null>): Promise<SendResult | null> {
    return this.onTheWire.run(async (waitedMs) => {
      const request = await build(waitedMs);
      return request ? this.attempt(request) : null;
    });
  }

  /**
   * One POST through undici's dispatcher with callbacks rather than its promise-and-stream API: measured here,
   * request() with an AbortSignal cost ~100 µs of CPU per POST, a dispatch with a plain timer ~60 µs.
   */
  private attempt(request: OutgoingRequest): Promise<SendResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    const verdict = checkWebhookUrl(request.url, this.allowed);
    // A URL refused now is refused on every retry: report it as blocked so it is not retried.
    if (!verdict.ok)
      return Promise.resolve({ startedAt, durationMs: 0, error: `blocked: ${verdict.reason}`, blocked: true });
    const limit = this.config.webhook.timeoutMs;
    return new Promise((resolve) => {
      let settled = false;
      let abort: ((reason?: Error) => void) | undefined;
      let statusCode = 0;
      let retryAfter: string | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ startedAt, durationMs: Math.round(performance.now() - t0), ...outcome });
      };
      // An answer counts once its status line is in, even if its body is cut short (too large, too slow).
      const answered = (): Outcome => ({
        statusCode,
        responseSnippet: Buffer.concat(chunks).subarray(0, RESPONSE_SNIPPET_BYTES).toString('utf8'),
        retryAfterMs: parseRetryAfter(retryAfter),
      });
      // One deadline for the whole attempt (connect, answer, body), to the millisecond: undici's own timeouts
      // tick at a coarser grain.
      const timer = setTimeout(() => {
        finish(statusCode ? answered() : { error: `timeout: no response within ${limit} ms` });
        abort?.(new Error('deadline'));
      }, limit);
      try {
        // The body is the exact serialized string that was signed: sent untouched.
        this.dispatcher.dispatch(
          {
            origin: verdict.url.origin,
            path: verdict.url.pathname + verdict.url.search,
            method: 'POST',
            headers: request.headers,
            body: request.body,
          },
          {
            onConnect: (abortRequest: (reason?: Error) => void) => {
              abort = abortRequest;
              if (settled) abortRequest(new Error('deadline'));
            },
            onHeaders: (code: number, raw: Buffer[]) => {
              statusCode = code;
              retryAfter = rawHeader(raw, 'retry-after');
              return true;
            },
            onData: (chunk: Buffer) => {
              if (size < RESPONSE_SNIPPET_BYTES) chunks.push(chunk);
              size += chunk.length;
              if (size <= MAX_RESPONSE_READ) return true;
              // Past this the rest is not worth reading: drop the connection rather than drain it.
              finish(answered());
              abort?.(new Error('response too large'));
              return false;
            },
            onComplete: () => finish(answered()),
            onError: (err: Error) => finish(statusCode ? answered() : failure(err)),
          },
        );
      } catch (err) {
        finish(failure(err));
      }
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.dispatcher.destroy();
  }
}
