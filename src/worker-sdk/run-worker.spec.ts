import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from './protocol.js';
import { JobError } from './protocol.js';
import { LeaseEndedError, runWorker, type RunningWorker, type WorkerOptions } from './run-worker.js';

/**
 * A fake Herald speaking the worker wire contract, small enough to read: a queue of jobs, leases, and a log of what
 * the worker sent. `heartbeat` decides each heartbeat's answer; `failLeases` answers the next lease requests 503.
 */
async function fakeHerald() {
  const queue: Job[] = [];
  const calls: { method: string; path: string; body: any; auth?: string }[] = [];
  const artifacts = new Map<string, { type?: string; bytes: Buffer; chunked: boolean }>();
  const waiting: (() => void)[] = [];
  const state = {
    heartbeat: (_leaseId: string, _n: number): { status: number; body: unknown } => ({
      status: 200,
      body: { lease_expires_at: new Date().toISOString(), cancel: false },
    }),
    failLeases: 0,
    completeStatus: 200,
  };
  const beats = new Map<string, number>();
  let n = 0;
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const path = req.url ?? '';
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' });
      res.end(JSON.stringify(body));
    };
    const artifact = /^\/v1\/worker\/leases\/([^/]+)\/artifacts\/(.+)$/.exec(path);
    if (req.method === 'PUT' && artifact) {
      calls.push({ method: 'PUT', path, body: null, auth: req.headers.authorization });
      artifacts.set(decodeURIComponent(artifact[2]), {
        type: req.headers['content-type'],
        bytes: raw,
        chunked: req.headers['transfer-encoding'] === 'chunked',
      });
      return reply(201, { url: `http://herald/v1/artifacts/${artifact[2]}` });
    }
    const body = raw.length ? JSON.parse(raw.toString()) : undefined;
    calls.push({ method: req.method!, path, body, auth: req.headers.authorization });
    if (path === '/v1/worker/leases') {
      if (state.failLeases > 0) {
        state.failLeases--;
        return reply(503, { code: 'unavailable', detail: 'starting' });
      }
      const deadline = Date.now() + body.wait_seconds * 1000;
      while (!queue.length && Date.now() < deadline && !res.destroyed) {
        await new Promise<void>((r) => {
          waiting.push(r);
          setTimeout(r, 50);
        });
      }
      return reply(200, { jobs: queue.splice(0, body.max_jobs) });
    }
    const lease = /^\/v1\/worker\/leases\/([^/]+)\/(heartbeat|complete|fail)$/.exec(path);
    if (lease?.[2] === 'heartbeat') {
      const count = (beats.get(lease[1]) ?? 0) + 1;
      beats.set(lease[1], count);
      const answer = state.heartbeat(lease[1], count);
      return reply(answer.status, answer.body);
    }
    if (lease?.[2] === 'complete')
      return reply(
        state.completeStatus,
        state.completeStatus === 200 ? {} : { code: 'validation_failed', detail: 'unknown artifact "b.png"' },
      );
    if (lease?.[2] === 'fail') return reply(200, {});
    reply(404, { code: 'not_found' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    calls,
    artifacts,
    state,
    add(job: Partial<Job> = {}) {
      const id = ++n;
      queue.push({
        lease_id: `lease-${id}`,
        lease_seconds: 0.3,
        lease_expires_at: new Date(Date.now() + 300).toISOString(),
        task_id: `task-${id}`,
        attempt: 1,
        kind: 'image',
        model: 'flux-dev',
        prompt: 'a lighthouse',
        params: {},
        options: { duration: null, size: '64x64', fps: null, style: null, n: 1, seed: null, response_format: null },
        resume_from_percent: 0,
        ...job,
      });
      for (const w of waiting.splice(0)) w();
      return `lease-${id}`;
    },
    of: (what: string) => calls.filter((c) => c.path.endsWith(what)),
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const until = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

let herald: Awaited<ReturnType<typeof fakeHerald>>;
let worker: RunningWorker | undefined;
const logs: string[] = [];
const start = (options: Partial<WorkerOptions> & Pick<WorkerOptions, 'handler'>) =>
  (worker = runWorker({
    url: herald.url,
    token: 'hw_test',
    models: ['flux-*'],
    waitSeconds: 1,
    backoff: { initialMs: 10, maxMs: 50 },
    log: (l, m) => logs.push(`${l} ${m}`),
    ...options,
  }));

afterEach(async () => {
  await worker?.stop({ graceMs: 0 });
  worker = undefined;
  logs.length = 0;
  await herald?.close();
});

describe('runWorker', () => {
  it('long-polls for its models, runs the handler with progress and a streamed upload, and completes with its outputs', async () => {
    herald = await fakeHerald();
    let seen: Job | undefined;
    start({
      workerId: 'gpu-1',
      kinds: ['image'],
      handler: async (job, ctx) => {
        seen = job;
        await ctx.progress(40, 'denoising');
        await ctx.upload('out.png', Readable.from([Buffer.from('PNG-'), Buffer.from('bytes')]), 'image/png');
        return [{ artifact: 'out.png', mime_type: 'image/png', metadata: { seed: 7 } }];
      },
    });
    herald.add({ prompt: 'a red fox' });
    await until(() => herald.of('/complete').length === 1, 'complete');

    const lease = herald.of('/v1/worker/leases')[0];
    expect(lease.auth).toBe('Bearer hw_test');
    expect(lease.body).toEqual({
      worker_id: 'gpu-1',
      models: ['flux-*'],
      kinds: ['image'],
      max_jobs: 1,
      wait_seconds: 1,
    });
    expect(seen?.prompt).toBe('a red fox');
    expect(herald.of('/heartbeat')[0].body).toEqual({ progress: 40, message: 'denoising' });
    expect(herald.artifacts.get('out.png')).toEqual({
      type: 'image/png',
      bytes: Buffer.from('PNG-bytes'),
      chunked: true,
    });
    expect(herald.of('/complete')[0]).toMatchObject({
      path: '/v1/worker/leases/lease-1/complete',
      body: { outputs: [{ artifact: 'out.png', mime_type: 'image/png', metadata: { seed: 7 } }] },
    });
    expect(herald.of('/fail')).toHaveLength(0);
  });

  it('fails the lease with the thrown error’s message, code and retryable', async () => {
    herald = await fakeHerald();
    start({
      handler: async (job) => {
        if (job.task_id === 'task-1')
          throw new JobError('prompt refused by the safety filter', { code: 'content_policy', retryable: false });
        throw new Error('CUDA error');
      },
    });
    herald.add();
    herald.add();
    await until(() => herald.of('/fail').length === 2, 'two fails');
    expect(herald.of('/fail').map((c) => c.body)).toEqual([
      { error: 'prompt refused by the safety filter', code: 'content_policy', retryable: false },
      { error: 'CUDA error' },
    ]);
    expect(herald.of('/complete')).toHaveLength(0);
  });

  it('fails rather than completes when the handler returns no outputs', async () => {
    herald = await fakeHerald();
    start({ handler: async () => undefined as never });
    herald.add();
    await until(() => herald.of('/fail').length === 1, 'fail');
    expect(herald.of('/fail')[0].body).toMatchObject({ code: 'invalid_outputs', retryable: false });
  });

  it('heartbeats every lease_seconds/3 while the handler works, without being asked', async () => {
    herald = await fakeHerald();
    let release!: () => void;
    start({ handler: () => new Promise((r) => (release = () => r([{ url: 'https://cdn.example/x.png' }]))) });
    herald.add({ lease_seconds: 0.3 });
    await until(() => herald.of('/heartbeat').length >= 3, 'three heartbeats');
    release();
    await until(() => herald.of('/complete').length === 1, 'complete');
    expect(herald.of('/complete')[0].body).toEqual({ outputs: [{ url: 'https://cdn.example/x.png' }] });
  });

  it('aborts ctx.signal when a heartbeat answers cancel, and sends neither complete nor fail', async () => {
    herald = await fakeHerald();
    herald.state.heartbeat = (_, n) => ({
      status: 200,
      body: n >= 2 ? { cancel: true, reason: 'cancelled' } : { cancel: false },
    });
    let reason: unknown;
    start({
      handler: (_, ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject((reason = ctx.signal.reason)))),
    });
    herald.add();
    await until(() => reason !== undefined, 'abort');
    expect(reason).toBeInstanceOf(LeaseEndedError);
    expect((reason as LeaseEndedError).reason).toBe('cancelled');
    await until(() => worker!.running === 0, 'job dropped');
    expect(herald.of('/complete')).toHaveLength(0);
    expect(herald.of('/fail')).toHaveLength(0);
  });

  it('aborts ctx.signal as lost when Herald answers 410 (the lease expired or was taken over)', async () => {
    herald = await fakeHerald();
    herald.state.heartbeat = () => ({ status: 410, body: { code: 'lease_expired', detail: 'lease expired' } });
    let reason: LeaseEndedError | undefined;
    start({
      handler: (_, ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject((reason = ctx.signal.reason)))),
    });
    herald.add();
    await until(() => reason !== undefined, 'abort');
    expect(reason?.reason).toBe('lost');
    await until(() => worker!.running === 0, 'job dropped');
    expect(herald.of('/fail')).toHaveLength(0);
  });

  it('asks for as many jobs as it has free slots', async () => {
    herald = await fakeHerald();
    const releases: (() => void)[] = [];
    start({
      concurrency: 3,
      handler: () => new Promise((r) => releases.push(() => r([{ url: 'https://cdn.example/x' }]))),
    });
    await until(() => herald.of('/v1/worker/leases').length === 1, 'first poll');
    herald.add();
    await until(() => releases.length === 1, 'first job');
    await until(() => herald.of('/v1/worker/leases').length === 2, 'second poll');
    expect(herald.of('/v1/worker/leases').map((c) => c.body.max_jobs)).toEqual([3, 2]);
    herald.add();
    herald.add();
    await until(() => releases.length === 3, 'three jobs');
    await new Promise((r) => setTimeout(r, 100));
    expect(herald.of('/v1/worker/leases').length).toBeLessThanOrEqual(3); // no poll while full
    for (const r of releases) r();
    await until(() => herald.of('/complete').length === 3, 'three completes');
  });

  it('backs off and retries when Herald is unreachable or answers 5xx, then carries on', async () => {
    herald = await fakeHerald();
    herald.state.failLeases = 3;
    start({ handler: async () => [{ url: 'https://cdn.example/x' }] });
    herald.add();
    await until(() => herald.of('/complete').length === 1, 'complete after retries');
    expect(logs.filter((l) => l.startsWith('warn lease request failed'))).toHaveLength(3);

    // Nobody listening at all: the worker keeps trying and does not throw.
    await worker!.stop({ graceMs: 0 });
    const url = herald.url;
    await herald.close();
    const offline = runWorker({
      url,
      token: 't',
      models: ['m'],
      waitSeconds: 1,
      backoff: { initialMs: 5, maxMs: 10 },
      log: (l, m) => logs.push(`${l} ${m}`),
      handler: async () => [],
    });
    await until(
      () => logs.filter((l) => l.includes('request to Herald failed (ECONNREFUSED)')).length >= 2,
      'retries while offline',
    );
    await offline.stop();
    herald = await fakeHerald();
  });

  it('on stop takes no more jobs and lets a running one finish', async () => {
    herald = await fakeHerald();
    let release!: () => void;
    start({ handler: () => new Promise((r) => (release = () => r([{ url: 'https://cdn.example/x' }]))) });
    herald.add();
    await until(() => release !== undefined, 'job running');
    const stopped = worker!.stop({ graceMs: 5_000 });
    herald.add();
    await new Promise((r) => setTimeout(r, 100));
    release();
    await stopped;
    expect(herald.of('/complete')).toHaveLength(1);
    expect(herald.of('/v1/worker/leases')).toHaveLength(1); // full while it ran, and no new poll after stop
  });

  it('hands a job that outlives the stop grace back as retryable, aborting its signal', async () => {
    herald = await fakeHerald();
    let reason: LeaseEndedError | undefined;
    start({
      handler: (_, ctx) => new Promise(() => ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason))),
    });
    herald.add();
    await until(() => herald.of('/heartbeat').length >= 1, 'job running');
    await worker!.stop({ graceMs: 20 });
    expect(reason?.reason).toBe('shutdown');
    expect(herald.of('/fail').map((c) => c.body)).toEqual([
      { error: 'the worker stopped before the job finished', code: 'worker_stopped', retryable: true },
    ]);
  });

  it('fails the task with Herald’s reason when it refuses the outputs', async () => {
    herald = await fakeHerald();
    herald.state.completeStatus = 422;
    start({ handler: async () => [{ artifact: 'b.png' }] });
    herald.add();
    await until(() => herald.of('/fail').length === 1, 'fail');
    expect(herald.of('/fail')[0].body).toMatchObject({ code: 'invalid_outputs', retryable: false });
    expect(herald.of('/fail')[0].body.error).toContain('unknown artifact "b.png"');
  });
});
