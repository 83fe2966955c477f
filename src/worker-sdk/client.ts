import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FailBody, Job, JobKind, Output } from './protocol.js';

/** An answer from Herald that was not a 2xx, with the problem+json `code` and `detail` when it sent them. */
export class HeraldHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    detail: string,
  ) {
    super(`Herald answered ${status}${code ? ` ${code}` : ''}: ${detail}`);
    this.name = 'HeraldHttpError';
  }
}

/** What `ctx.upload` accepts: bytes, text, a Blob, a web ReadableStream, or any (async) iterable of chunks such as a Node stream. */
export type UploadBody =
  Uint8Array | ArrayBuffer | string | Blob | ReadableStream<Uint8Array> | Readable | AsyncIterable<Uint8Array>;

export interface HeartbeatAnswer {
  lease_expires_at?: string;
  cancel: boolean;
  reason?: string;
}

/** What a request to Herald failed with below HTTP (refused, reset, timed out); `cause` is Node's error. */
export class HeraldRequestError extends Error {
  constructor(cause: unknown) {
    super(`request to Herald failed`, { cause });
    this.name = 'HeraldRequestError';
  }
}

interface Answer {
  status: number;
  statusText: string;
  text: string;
}

/**
 * The five calls of the worker protocol over node:http(s) with a keep-alive Agent of its own; knows nothing of
 * scheduling. Not fetch: for the short JSON requests of a lease → complete cycle, Node's fetch (undici) cost a
 * worker ~4× the CPU of node:http per request (docs/BENCHMARKS.md, finding 31).
 */
export class WorkerClient {
  private readonly base: URL;
  private readonly agent: http.Agent;
  private readonly transport: typeof http | typeof https;

  constructor(
    url: string,
    private readonly token: string,
  ) {
    this.base = new URL(url.replace(/\/+$/, '') + '/');
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:')
      throw new TypeError(`Herald's url must be http(s), not ${this.base.protocol}`);
    this.transport = this.base.protocol === 'https:' ? https : http;
    // Idle sockets are unref'd by the Agent, so they never keep the process alive; close() drops them.
    this.agent = new this.transport.Agent({ keepAlive: true });
  }

  async lease(
    body: { worker_id: string; models: string[]; kinds?: JobKind[]; max_jobs: number; wait_seconds: number },
    signal?: AbortSignal,
  ): Promise<Job[]> {
    // The request is held up to wait_seconds by design; the margin only catches a connection that went dead.
    const timeout = AbortSignal.timeout((body.wait_seconds + 15) * 1000);
    const answer = await this.call(
      'POST',
      '/v1/worker/leases',
      body,
      signal ? AbortSignal.any([signal, timeout]) : timeout,
    );
    return (answer as { jobs?: Job[] }).jobs ?? [];
  }

  heartbeat(leaseId: string, body: { progress?: number; message?: string }): Promise<HeartbeatAnswer> {
    return this.call(
      'POST',
      `/v1/worker/leases/${encodeURIComponent(leaseId)}/heartbeat`,
      body,
      AbortSignal.timeout(15_000),
    ) as Promise<HeartbeatAnswer>;
  }

  async upload(
    leaseId: string,
    name: string,
    data: UploadBody,
    mimeType: string,
    signal?: AbortSignal,
  ): Promise<{ url: string }> {
    const bytes =
      typeof data === 'string'
        ? Buffer.from(data)
        : data instanceof Uint8Array
          ? data
          : data instanceof ArrayBuffer
            ? new Uint8Array(data)
            : data instanceof Blob
              ? new Uint8Array(await data.arrayBuffer())
              : undefined;
    // A stream goes out chunk by chunk (chunked transfer encoding); nothing is held whole in memory.
    const stream =
      bytes ??
      (data instanceof Readable ? data : Readable.from(data as AsyncIterable<Uint8Array>, { objectMode: false }));
    const answer = await this.request(
      'PUT',
      `/v1/worker/leases/${encodeURIComponent(leaseId)}/artifacts/${encodeURIComponent(name)}`,
      mimeType,
      stream,
      signal,
    );
    return this.answer(answer) as { url: string };
  }

  complete(leaseId: string, body: { outputs: Output[]; revised_prompt?: string }): Promise<unknown> {
    return this.call(
      'POST',
      `/v1/worker/leases/${encodeURIComponent(leaseId)}/complete`,
      body,
      AbortSignal.timeout(30_000),
    );
  }

  fail(leaseId: string, body: FailBody): Promise<unknown> {
    return this.call(
      'POST',
      `/v1/worker/leases/${encodeURIComponent(leaseId)}/fail`,
      body,
      AbortSignal.timeout(30_000),
    );
  }

  /** Closes the kept-alive connections to Herald (runWorker does once it has stopped). */
  close(): void {
    this.agent.destroy();
  }

  private async call(method: string, path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const json = Buffer.from(JSON.stringify(body));
    return this.answer(await this.request(method, path, 'application/json', json, signal));
  }

  /**
   * One request. A kept-alive socket that Herald closed just as it was reused resets before any answer: that
   * request never reached Herald and is sent once more on a fresh socket. Aborted: rejects with `signal.reason`,
   * as fetch does.
   */
  private async request(
    method: string,
    path: string,
    contentType: string,
    body: Uint8Array | Readable,
    signal?: AbortSignal,
  ): Promise<Answer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.send(method, path, contentType, body, signal);
      } catch (err) {
        const retry =
          attempt === 1 &&
          !(body instanceof Readable) &&
          !signal?.aborted &&
          (err as { reusedSocket?: boolean }).reusedSocket === true;
        if (!retry) throw err;
      }
    }
  }

  private send(
    method: string,
    path: string,
    contentType: string,
    body: Uint8Array | Readable,
    signal?: AbortSignal,
  ): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason as Error);
      let settled = false;
      const done = (fail: Error | undefined, answer?: Answer) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (fail) reject(fail);
        else resolve(answer!);
      };
      const headers: http.OutgoingHttpHeaders = {
        authorization: `Bearer ${this.token}`,
        'content-type': contentType,
      };
      if (!(body instanceof Readable)) headers['content-length'] = body.byteLength;
      const req = this.transport.request(
        new URL(path.slice(1), this.base),
        { method, agent: this.agent, headers },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            done(undefined, {
              status: res.statusCode ?? 0,
              statusText: res.statusMessage ?? '',
              text: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', (err) => done(new HeraldRequestError(err)));
        },
      );
      const onAbort = () => {
        done(signal!.reason as Error);
        req.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => {
        const failed = new HeraldRequestError(err);
        // Only a reset before any byte of an answer on a reused socket may be sent again (see request).
        if (req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET')
          Object.assign(failed, { reusedSocket: true });
        done(failed);
      });
      if (body instanceof Readable) pipeline(body, req).catch((err: unknown) => (req.destroy(), done(err as Error)));
      else req.end(body);
    });
  }

  private answer({ status, statusText, text }: Answer): unknown {
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      parsed = undefined;
    }
    if (status >= 200 && status < 300) return parsed ?? {};
    const code = typeof parsed?.code === 'string' ? parsed.code : undefined;
    const detail =
      typeof parsed?.detail === 'string'
        ? parsed.detail
        : typeof parsed?.title === 'string'
          ? parsed.title
          : text.slice(0, 300) || statusText;
    throw new HeraldHttpError(status, code, detail);
  }
}
