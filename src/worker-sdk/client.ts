import type { Readable } from 'node:stream';
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

/** The five calls of the worker protocol over Node's built-in fetch; knows nothing of scheduling. */
export class WorkerClient {
  private readonly base: string;

  constructor(
    url: string,
    private readonly token: string,
  ) {
    this.base = url.replace(/\/+$/, '');
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
    const streamed = !(
      data instanceof Uint8Array ||
      data instanceof ArrayBuffer ||
      typeof data === 'string' ||
      data instanceof Blob
    );
    const res = await fetch(
      `${this.base}/v1/worker/leases/${encodeURIComponent(leaseId)}/artifacts/${encodeURIComponent(name)}`,
      {
        method: 'PUT',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': mimeType },
        // A stream goes out chunk by chunk (chunked transfer encoding); nothing is held whole in memory.
        body: data as RequestInit['body'],
        ...(streamed ? { duplex: 'half' } : {}),
        signal,
      },
    );
    return (await this.answer(res)) as { url: string };
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

  private async call(method: string, path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const res = await fetch(this.base + path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
    return this.answer(res);
  }

  private async answer(res: Response): Promise<unknown> {
    const text = await res.text();
    let parsed: Record<string, unknown> | undefined;
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.ok) return parsed ?? {};
    const code = typeof parsed?.code === 'string' ? parsed.code : undefined;
    const detail =
      typeof parsed?.detail === 'string'
        ? parsed.detail
        : typeof parsed?.title === 'string'
          ? parsed.title
          : text.slice(0, 300) || res.statusText;
    throw new HeraldHttpError(res.status, code, detail);
  }
}
