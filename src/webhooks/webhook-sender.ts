import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import axios, { AxiosInstance } from 'axios';
import { lookup as dnsLookup, LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { checkWebhookUrl, Cidr, isAddressAllowed, parseCidrs } from './address-policy.js';
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
        return callback(new BlockedAddressError(`${hostname} resolves to ${addresses.map((a) => a.address).join(', ')}, which webhooks may not reach`), '');
      }
      if (opts.all) return callback(null, usable);
      callback(null, usable[0].address, usable[0].family);
    });
  };
}

async function readSnippet(stream: Readable, deadline: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).subarray(0, RESPONSE_SNIPPET_BYTES).toString('utf8'));
    };
    const timer = setTimeout(() => {
      stream.destroy();
      finish();
    }, Math.max(0, deadline - Date.now()));
    stream.on('data', (chunk: Buffer) => {
      if (size < RESPONSE_SNIPPET_BYTES) chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_RESPONSE_READ) {
        stream.destroy();
        finish();
      }
    });
    stream.on('end', finish);
    stream.on('error', finish);
  });
}

/**
 * The one outbound HTTP client: keep-alive pools per origin, a timeout, no redirects, no proxies, and a DNS
 * lookup that refuses private and special addresses. Knows nothing of tasks or deliveries.
 */
@Injectable()
export class WebhookSender implements OnApplicationShutdown {
  private readonly http: AxiosInstance;
  private readonly allowed: Cidr[];
  private readonly agents: [http.Agent, https.Agent];

  constructor(@Inject(CONFIG) private readonly config: HeraldConfig) {
    this.allowed = parseCidrs(config.webhook.allowedCidrs);
    const agentOptions = { keepAlive: true, maxSockets: 256, maxFreeSockets: 256, lookup: guardedLookup(this.allowed) as never };
    this.agents = [new http.Agent(agentOptions), new https.Agent(agentOptions)];
    this.http = axios.create({
      httpAgent: this.agents[0],
      httpsAgent: this.agents[1],
      maxRedirects: 0,
      proxy: false,
      timeout: config.webhook.timeoutMs,
      validateStatus: () => true,
      responseType: 'stream',
      decompress: false,
      // The body is already the exact serialized string that was signed: send it untouched.
      transformRequest: [(data: unknown) => data],
    });
  }

  async send(request: OutgoingRequest): Promise<SendResult> {
    const startedAt = new Date();
    const t0 = performance.now();
    const elapsed = () => Math.round(performance.now() - t0);
    const verdict = checkWebhookUrl(request.url, this.allowed);
    // A URL refused now is refused on every retry: report it as blocked so it is not retried.
    if (!verdict.ok) return { startedAt, durationMs: 0, error: `blocked: ${verdict.reason}`, blocked: true };
    const deadline = Date.now() + this.config.webhook.timeoutMs;
    try {
      const res = await this.http.post<Readable>(request.url, request.body, {
        headers: request.headers,
        signal: AbortSignal.timeout(this.config.webhook.timeoutMs),
      });
      const responseSnippet = await readSnippet(res.data, deadline);
      const retryAfter = res.headers['retry-after'];
      return {
        startedAt,
        durationMs: elapsed(),
        statusCode: res.status,
        responseSnippet,
        retryAfterMs: parseRetryAfter(typeof retryAfter === 'string' ? retryAfter : undefined),
      };
    } catch (err) {
      const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
      const code = e.cause?.code ?? e.code;
      if (code === 'EBLOCKED') return { startedAt, durationMs: elapsed(), error: `blocked: ${e.cause?.message ?? e.message}`, blocked: true };
      const timedOut = code === 'ECONNABORTED' || code === 'ETIMEDOUT' || code === 'ERR_CANCELED' || e.message?.includes('aborted');
      return {
        startedAt,
        durationMs: elapsed(),
        error: timedOut ? `timeout: no response within ${this.config.webhook.timeoutMs} ms` : `${code ?? 'error'}: ${e.message ?? 'request failed'}`,
      };
    }
  }

  onApplicationShutdown(): void {
    for (const agent of this.agents) agent.destroy();
  }
}
