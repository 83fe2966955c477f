import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkerTokensService } from '../../src/auth/worker-tokens.service.js';
import { eventually, startTestHerald, testDb, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';

// The worker protocol driven with plain fetch, as a worker written from docs/WORKERS.md would.
const WORKER_TOKEN = `hw_test_${randomBytes(16).toString('hex')}`;
const ENV = {
  MODEL_ROUTES: 't-*=workers,*=simulator',
  BOOTSTRAP_WORKER_TOKEN: WORKER_TOKEN,
  // Long enough for a loaded machine; the expiry tests run against a Herald of their own with a short lease.
  WORKER_LEASE_SECONDS: '30',
  WORKER_MAX_LEASES: '2',
  SWEEP_INTERVAL_MS: '100',
  ARTIFACT_MAX_BYTES: '65536',
  // Far below the uploads: the global JSON body limit must not apply to them.
  BODY_LIMIT_BYTES: '4096',
};

/** A model id of its own for each test (routed to workers by t-*), so no test leases another's tasks. */
const model = (name: string) => `t-${name}-${randomBytes(3).toString('hex')}`;

let h: TestHerald;
let receiver: Receiver;
beforeAll(async () => {
  h = await startTestHerald(ENV);
  receiver = await startReceiver();
});
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

async function worker(method: string, route: string, body?: unknown, { token = WORKER_TOKEN, headers = {} } = {}) {
  const raw = body instanceof Uint8Array;
  const res = await fetch(h.baseUrl + route, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && !raw ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: (body === undefined ? undefined : raw ? body : JSON.stringify(body)) as BodyInit | undefined,
  });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

const lease = (body: Record<string, unknown>, options?: Parameters<typeof worker>[3]) =>
  worker('POST', '/v1/worker/leases', { worker_id: 'w-test', ...body }, options);
const createVideo = (model: string, extra: Record<string, unknown> = {}) =>
  h.api('POST', '/v1/videos/generations/async', { model, prompt: 'A serene mountain', ...extra });
const task = async (id: string) => (await h.api('GET', `/v1/tasks/${id}`)).body;

/** Leases until the given task comes up (other tests' leftovers are handed back by failing them). */
async function leaseTask(taskId: string, body: Record<string, unknown>) {
  return eventually(async () => {
    const res = await lease({ wait_seconds: 0, ...body });
    expect(res.status).toBe(200);
    return res.body.jobs.find((j: any) => j.task_id === taskId);
  });
}

describe('worker protocol: a full cycle', () => {
  it('leases a job, records progress, serves the uploaded artifact byte-exact and sends the terminal webhook', async () => {
    const m = model('cycle');
    const created = await createVideo(m, {
      duration: 6,
      size: '1280x720',
      seed: 7,
      camera: 'pan',
      webhook_url: receiver.url(),
    });
    expect(created.status).toBe(202);
    const id = created.body.task_id;
    expect((await task(id)).status).toBe('pending');

    const job = await leaseTask(id, { models: [m], kinds: ['video'] });
    expect(job).toMatchObject({
      task_id: id,
      attempt: 1,
      kind: 'video',
      model: m,
      prompt: 'A serene mountain',
      params: { camera: 'pan' },
      options: { duration: 6, size: '1280x720', fps: null, style: null, n: null, seed: 7, response_format: null },
      resume_from_percent: 0,
      lease_seconds: 30,
    });
    expect(Date.parse(job.lease_expires_at)).toBeGreaterThan(Date.now() - 1_000);
    expect((await task(id)).status).toBe('processing');

    const beat = await worker('POST', `/v1/worker/leases/${job.lease_id}/heartbeat`, {
      progress: 40,
      message: 'Rendering',
    });
    expect(beat.status).toBe(200);
    expect(beat.body).toMatchObject({ cancel: false, lease_expires_at: expect.any(String) });
    expect(await task(id)).toMatchObject({ status: 'processing', progress: 40, message: 'Rendering' });

    const bytes = randomBytes(40_000);
    const put = await worker('PUT', `/v1/worker/leases/${job.lease_id}/artifacts/out.mp4`, bytes, {
      headers: { 'content-type': 'video/mp4' },
    });
    expect(put.status).toBe(201);
    expect(put.body.url).toMatch(/^http/);
    const unused = await worker('PUT', `/v1/worker/leases/${job.lease_id}/artifacts/draft.mp4`, randomBytes(10), {
      headers: { 'content-type': 'video/mp4' },
    });
    // An upload is public once its task completed with it: not before, and never one left out of the outputs.
    expect((await fetch(put.body.url)).status).toBe(404);

    const done = await worker('POST', `/v1/worker/leases/${job.lease_id}/complete`, {
      outputs: [{ artifact: 'out.mp4', metadata: { resolution: '1280x720' } }],
    });
    expect(done.status).toBe(200);
    expect((await fetch(unused.body.url)).status).toBe(404);
    const finished = await task(id);
    expect(finished).toMatchObject({ status: 'completed', progress: 100, error: null });
    expect(finished.result.data[0].url).toBe(put.body.url);
    expect(finished.result.data[0].metadata).toMatchObject({
      mime_type: 'video/mp4',
      file_size_bytes: 40_000,
      resolution: '1280x720',
      seed: 7,
    });
    const file = await fetch(finished.result.data[0].url);
    expect(file.headers.get('content-type')).toBe('video/mp4');
    expect(Buffer.from(await file.arrayBuffer()).equals(bytes)).toBe(true);

    const hooks = await eventually(async () => {
      const got = receiver.forTask(id);
      return got.some((r) => r.body.status === 'completed') ? got : undefined;
    });
    const terminal = hooks.find((r) => r.body.status === 'completed')!;
    expect(terminal.body).toMatchObject({ webhook_type: 'video_generation_completed', video_url: put.body.url });
    expect(
      hooks.some((r) => r.body.webhook_type === 'video_generation_progress' && r.body.progress_percentage === 40),
    ).toBe(true);

    // The lease ended with the completion.
    const again = await worker('POST', `/v1/worker/leases/${job.lease_id}/complete`, {
      outputs: [{ artifact: 'out.mp4' }],
    });
    expect(again.status).toBe(410);
    expect(again.body.code).toBe('lease_expired');
  });
});

const beat = (leaseId: string, body: unknown = {}) => worker('POST', `/v1/worker/leases/${leaseId}/heartbeat`, body);
const complete = (leaseId: string, body: unknown) => worker('POST', `/v1/worker/leases/${leaseId}/complete`, body);
const fail = (leaseId: string, body: unknown) => worker('POST', `/v1/worker/leases/${leaseId}/fail`, body);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leasing', () => {
  it('holds a long poll until a matching task is created, and answers with that job', async () => {
    const m = model('longpoll');
    const waiting = lease({ models: [m], wait_seconds: 20 });
    await sleep(150);
    const created = await createVideo(m);
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body.jobs.map((j: any) => j.task_id)).toEqual([created.body.task_id]);
  });

  it('answers {jobs: []} when the wait ends with nothing to do', async () => {
    const res = await lease({ models: [model('idle')], wait_seconds: 0.3 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jobs: [] });
  });

  it('gives two workers with different models only their own tasks, globs included, and honours kinds', async () => {
    const flux = model('flux');
    const mini = model('mini');
    const image = (await h.api('POST', '/v1/images/generations/async', { model: `${flux}-dev`, prompt: 'a red fox' }))
      .body.task_id;
    const video = (await createVideo(mini)).body.task_id;
    // A worker that serves the flux glob, but only videos, gets nothing.
    expect((await lease({ worker_id: 'w-video-only', models: [`${flux}-*`], kinds: ['video'] })).body.jobs).toEqual([]);
    const a = await lease({ worker_id: 'w-flux', models: [`${flux}-*`], max_jobs: 5 });
    const b = await lease({ worker_id: 'w-mini', models: [mini], max_jobs: 5 });
    expect(a.body.jobs.map((j: any) => [j.task_id, j.kind])).toEqual([[image, 'image']]);
    expect(b.body.jobs.map((j: any) => [j.task_id, j.kind])).toEqual([[video, 'video']]);
    // Leased once: nobody gets them again while the leases live.
    expect((await lease({ models: [`${flux}-*`, mini], max_jobs: 5 })).body.jobs).toEqual([]);
  });

  it('hands a task to only one of two workers leasing at the same moment', async () => {
    const m = model('race');
    const id = (await createVideo(m)).body.task_id;
    const results = await Promise.all([
      lease({ worker_id: 'w-1', models: [m] }),
      lease({ worker_id: 'w-2', models: [m] }),
      lease({ worker_id: 'w-3', models: [m] }),
    ]);
    const jobs = results.flatMap((r) => r.body.jobs);
    expect(jobs.map((j: any) => j.task_id)).toEqual([id]);
  });

  it('leaves worker-routed tasks to workers: the simulator never runs them', async () => {
    const id = (await createVideo(model('nosim'))).body.task_id;
    await sleep(800); // past SIMULATOR_DURATION_MS of the test Herald
    expect(await task(id)).toMatchObject({ status: 'pending', progress: 0 });
  });
});

describe('cancel and timeout reach the worker at its next heartbeat', () => {
  it('answers {cancel: true, reason: "cancelled"} after a cancel, and the lease ends', async () => {
    const m = model('cancel');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    expect((await beat(job.lease_id, { progress: 10 })).body.cancel).toBe(false);
    expect((await h.api('DELETE', `/v1/videos/generations/${id}`)).status).toBe(204);
    const res = await beat(job.lease_id, { progress: 20 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ cancel: true, reason: 'cancelled' });
    expect((await beat(job.lease_id)).status).toBe(410);
    expect(await task(id)).toMatchObject({ status: 'cancelled', progress: 10 });
  });

  it('answers {cancel: true, reason: "timedout"} once timeout_seconds has passed', async () => {
    const m = model('timeout');
    const id = (await createVideo(m, { timeout_seconds: 1 })).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const res = await eventually(async () => {
      const r = await beat(job.lease_id);
      return r.body.cancel ? r : undefined;
    });
    expect(res.body).toEqual({ cancel: true, reason: 'timedout' });
    expect(await task(id)).toMatchObject({ status: 'timedout', error_code: 'timeout' });
  });
});

describe('lease expiry', () => {
  let main: TestHerald;
  beforeAll(async () => {
    main = h;
    h = await startTestHerald({ ...ENV, WORKER_LEASE_SECONDS: '1' });
  });
  afterAll(async () => {
    const short = h;
    h = main;
    await short?.stop();
  });

  it('puts the task back with its progress, then fails it with worker_lost after WORKER_MAX_LEASES leases', async () => {
    const m = model('expiry');
    const id = (await createVideo(m)).body.task_id;
    const first = await leaseTask(id, { worker_id: 'w-dies', models: [m] });
    expect((await beat(first.lease_id, { progress: 30, message: 'Denoising' })).status).toBe(200);
    // The worker goes silent; past lease_seconds its lease is gone and the task waits again, still processing.
    const waiting = await eventually(async () => {
      const t = await task(id);
      return t.message === 'Worker lost; waiting for another worker' ? t : undefined;
    });
    expect(waiting).toMatchObject({ status: 'processing', progress: 30 });
    const gone = await beat(first.lease_id);
    expect(gone.status).toBe(410);
    expect(gone.body).toMatchObject({ code: 'lease_expired', status: 410 });
    const second = await leaseTask(id, { worker_id: 'w-takes-over', models: [m] });
    expect(second).toMatchObject({ task_id: id, attempt: 1, resume_from_percent: 30 });
    expect(second.lease_id).not.toBe(first.lease_id);
    // The first worker's late completion cannot overtake the new lease.
    expect((await complete(first.lease_id, { outputs: [{ url: 'https://cdn.example/x.mp4' }] })).status).toBe(410);
    // The second lease expires too: that was the last one (WORKER_MAX_LEASES=2).
    const failed = await eventually(async () => {
      const t = await task(id);
      return t.status === 'failed' ? t : undefined;
    });
    expect(failed).toMatchObject({ error_code: 'worker_lost', progress: 30 });
    expect(failed.error).toMatch(/lease/);
  });
});

describe('fail', () => {
  it('fails the task with the worker’s error and code when not retryable, and sends the failed webhook', async () => {
    const m = model('fail');
    const id = (await createVideo(m, { webhook_url: receiver.url('/fail') })).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const res = await fail(job.lease_id, { error: 'Insufficient credits', code: 'insufficient_credits' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ task_id: id, status: 'failed', requeued: false });
    expect(await task(id)).toMatchObject({
      status: 'failed',
      error: 'Insufficient credits',
      error_code: 'insufficient_credits',
    });
    const hook = await eventually(async () => receiver.forTask(id).find((r) => r.body.status === 'failed'));
    expect(hook.body).toMatchObject({ webhook_type: 'video_generation_completed', error: 'Insufficient credits' });
    // The client retries: a new attempt waits for a worker again, from the start.
    expect((await h.api('POST', `/v1/videos/generations/tasks/${id}/retry`)).status).toBe(202);
    const again = await leaseTask(id, { models: [m] });
    expect(again).toMatchObject({ attempt: 2, resume_from_percent: 0 });
    expect((await beat(job.lease_id)).status).toBe(410);
  });

  it('puts a retryable failure back in the queue, counting it toward WORKER_MAX_LEASES', async () => {
    const m = model('retryable');
    const id = (await createVideo(m)).body.task_id;
    const first = await leaseTask(id, { models: [m] });
    expect((await beat(first.lease_id, { progress: 50 })).status).toBe(200);
    expect((await fail(first.lease_id, { error: 'CUDA out of memory', retryable: true })).body).toMatchObject({
      status: 'processing',
      requeued: true,
    });
    expect((await task(id)).status).toBe('processing');
    const second = await leaseTask(id, { models: [m] });
    expect(second).toMatchObject({ attempt: 1, resume_from_percent: 50 });
    // Starting over, the new worker reports less: the client's progress does not go back.
    expect((await beat(second.lease_id, { progress: 10 })).status).toBe(200);
    expect((await task(id)).progress).toBe(50);
    const last = await fail(second.lease_id, { error: 'CUDA out of memory', code: 'oom', retryable: true });
    expect(last.body).toMatchObject({ status: 'failed', requeued: false });
    expect(await task(id)).toMatchObject({ status: 'failed', error: 'CUDA out of memory', error_code: 'oom' });
  });
});

describe('completing', () => {
  it('lets exactly one of two racing completions of a lease win', async () => {
    const m = model('double');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const body = { outputs: [{ url: 'https://cdn.example/v.mp4', mime_type: 'video/mp4' }] };
    const results = await Promise.all([complete(job.lease_id, body), complete(job.lease_id, body)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 410]);
    const events = (await h.api('GET', `/v1/tasks/${id}/events`)).body.data.map((e: any) => e.type);
    expect(events.filter((t: string) => t === 'task.completed')).toHaveLength(1);
    expect((await task(id)).result.data[0]).toMatchObject({
      url: 'https://cdn.example/v.mp4',
      metadata: { mime_type: 'video/mp4' },
    });
  });

  it("types a URL output given without mime_type by its path's extension", async () => {
    const m = model('typed');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const outputs = [{ url: 'https://cdn.example/renders/clip.WEBM?sig=a.png' }, { url: 'https://cdn.example/blob' }];
    expect((await complete(job.lease_id, { outputs })).status).toBe(200);
    const data = (await task(id)).result.data;
    expect(data.map((d: any) => d.metadata.mime_type)).toEqual(['video/webm', 'application/octet-stream']);
  });

  it('answers b64_json inline for images when the request asked for it', async () => {
    const m = model('b64');
    const id = (
      await h.api('POST', '/v1/images/generations/async', { model: m, prompt: 'a fox', response_format: 'b64_json' })
    ).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const png = randomBytes(300);
    expect(
      (
        await worker('PUT', `/v1/worker/leases/${job.lease_id}/artifacts/fox.png`, png, {
          headers: { 'content-type': 'image/png' },
        })
      ).status,
    ).toBe(201);
    expect(
      (await complete(job.lease_id, { outputs: [{ artifact: 'fox.png' }], revised_prompt: 'a red fox' })).status,
    ).toBe(200);
    const item = (await task(id)).result.data[0];
    expect(Buffer.from(item.b64_json, 'base64').equals(png)).toBe(true);
    expect(item).toMatchObject({
      revised_prompt: 'a red fox',
      metadata: { mime_type: 'image/png', file_size_bytes: 300 },
    });
  });
});

describe('credentials', () => {
  it('accepts only worker tokens on /v1/worker/*, and refuses them on tenant routes', async () => {
    const body = { worker_id: 'w', models: ['x'] };
    expect((await worker('POST', '/v1/worker/leases', body, { token: h.apiKey })).status).toBe(403);
    expect((await worker('POST', '/v1/worker/leases', body, { token: 'hw_not_a_token' })).status).toBe(401);
    const none = await fetch(`${h.baseUrl}/v1/worker/leases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toMatch(/application\/problem\+json/);
    const tenant = await worker('GET', '/v1/tasks');
    expect(tenant.status).toBe(403);
    expect(tenant.body.code).toBe('forbidden');
    expect((await worker('POST', '/v1/videos/generations/async', { model: 'm', prompt: 'p' })).status).toBe(403);
    expect((await worker('GET', '/v1/models')).status).toBe(403);
  });

  it("answers a lease only to the worker token that took it: another token's calls get 410 and change nothing", async () => {
    const m = model('mine');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const { token } = await h.herald.app.get(WorkerTokensService).create('stranger');
    const as = { token };
    const base = `/v1/worker/leases/${job.lease_id}`;
    const calls = [
      await worker('POST', `${base}/heartbeat`, { progress: 90 }, as),
      await worker('PUT', `${base}/artifacts/x.png`, Buffer.from('x'), as),
      await worker('POST', `${base}/complete`, { outputs: [{ url: 'https://cdn.example/x.png' }] }, as),
      await worker('POST', `${base}/fail`, { error: 'not mine' }, as),
    ];
    expect(calls.map((c) => [c.status, c.body.code])).toEqual(Array(4).fill([410, 'lease_expired']));
    expect(await task(id)).toMatchObject({ status: 'processing', progress: 0 });
    expect((await worker('POST', `${base}/heartbeat`, { progress: 50 })).status).toBe(200);
    expect((await complete(job.lease_id, { outputs: [{ url: 'https://cdn.example/x.png' }] })).status).toBe(200);
  });
});

describe('bad input', () => {
  it('answers 404 for an unknown lease and 422 for bad bodies, as problem+json', async () => {
    expect((await beat('nope')).status).toBe(404);
    const unknown = await beat('019adbd6-2a3e-7d4c-9b1e-2f4a5c6d7e8f_0123456789abcdef01234567');
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('lease_not_found');
    // Longer than Fastify's own 100-character limit on a path segment: still Herald's 404, as problem+json.
    const long = await beat('x'.repeat(300));
    expect([long.status, long.headers.get('content-type')]).toEqual([404, expect.stringContaining('problem+json')]);
    // An array over its bound is refused by its size alone (src/common/validation.spec.ts: 100,000 elements).
    const many = await worker('POST', '/v1/worker/leases', {
      worker_id: 'w',
      models: Array.from({ length: 400 }, (_, i) => `m${i}`),
    });
    expect([many.status, many.body.errors]).toEqual([
      422,
      [{ field: 'models', message: 'models must contain no more than 100 elements' }],
    ]);
    for (const body of [
      { worker_id: 'w' },
      { worker_id: 'w', models: [] },
      { worker_id: 'w', models: ['a'], max_jobs: 33 },
      { worker_id: 'w', models: ['a'], wait_seconds: 61 },
      { worker_id: 'w', models: ['a'], kinds: ['audio'] },
      { worker_id: 'bad id', models: ['a'] },
    ]) {
      const res = await worker('POST', '/v1/worker/leases', body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(res.body.code).toBe('validation_failed');
    }
    const m = model('bad');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    expect((await beat(job.lease_id, { progress: 'half' })).status).toBe(422);
    expect((await beat(job.lease_id, { progress: 101 })).status).toBe(422);
    expect((await complete(job.lease_id, { outputs: [] })).status).toBe(422);
    expect(
      (await complete(job.lease_id, { outputs: [{ artifact: 'a.png', url: 'https://x.example/a.png' }] })).status,
    ).toBe(422);
    const missing = await complete(job.lease_id, { outputs: [{ artifact: 'never-uploaded.png' }] });
    expect(missing.status).toBe(422);
    expect(missing.body.errors[0].field).toBe('outputs.0.artifact');
    expect((await fail(job.lease_id, { code: 'x' })).status).toBe(422);
    expect((await worker('PUT', `/v1/worker/leases/${job.lease_id}/artifacts/.hidden`, Buffer.from('x'))).status).toBe(
      422,
    );
    const longName = await worker(
      'PUT',
      `/v1/worker/leases/${job.lease_id}/artifacts/${'a'.repeat(101)}`,
      Buffer.from('x'),
    );
    expect([longName.status, longName.body.code]).toEqual([422, 'validation_failed']);
    const smuggled = await h.api('POST', '/v1/videos/generations/async', JSON.stringify({ model: m, prompt: 'p' }), {
      'content-type': 'application/x-herald-raw-upload',
    });
    expect(smuggled.status).toBe(415);
    expect(smuggled.headers.get('content-type')).toMatch(/problem\+json/);
    // Bad bodies changed nothing: the lease is still good.
    expect((await beat(job.lease_id)).body.cancel).toBe(false);
  });

  it('never answers a malformed request with a 5xx, on any worker route', async () => {
    const m = model('odd');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const leaseIds = [
      job.lease_id,
      'x'.repeat(90),
      '%00',
      `${id}_zz`,
      '019adbd6-2a3e-7d4c-9b1e-2f4a5c6d7e8f_0123456789abcdef01234567',
    ];
    const bodies = [
      'null',
      '[]',
      '"text"',
      '42',
      '{',
      '{"models":"x"}',
      '{"worker_id":5,"models":[1]}',
      '{"outputs":[null]}',
      '{"outputs":[1]}',
      '{"outputs":[{"artifact":"a","metadata":[]}]}',
      '{"outputs":[{"url":"ftp://x"}]}',
      '{"progress":null}',
      '{"progress":1e309}',
      '{"error":null}',
      '{"error":"e","retryable":"yes"}',
      '{"message":{"a":1}}',
    ];
    const problems: string[] = [];
    for (const leaseId of leaseIds) {
      for (const route of ['heartbeat', 'complete', 'fail']) {
        for (const body of bodies) {
          const res = await fetch(`${h.baseUrl}/v1/worker/leases/${encodeURIComponent(leaseId)}/${route}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
            body,
          });
          if (
            res.status >= 500 ||
            (res.status >= 400 && !String(res.headers.get('content-type')).includes('problem+json'))
          )
            problems.push(`${route} ${leaseId.slice(0, 40)} ${body} → ${res.status}`);
        }
      }
      const put = await fetch(
        `${h.baseUrl}/v1/worker/leases/${encodeURIComponent(leaseId)}/artifacts/${encodeURIComponent('a b')}`,
        { method: 'PUT', headers: { authorization: `Bearer ${WORKER_TOKEN}` }, body: 'x' },
      );
      if (put.status >= 500) problems.push(`PUT ${leaseId.slice(0, 40)} → ${put.status}`);
    }
    for (const body of bodies) {
      const res = await fetch(`${h.baseUrl}/v1/worker/leases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
        body,
      });
      if (res.status >= 500) problems.push(`lease ${body} → ${res.status}`);
    }
    expect(problems).toEqual([]);
  });

  it('answers 413 for an artifact over ARTIFACT_MAX_BYTES, declared or streamed, and keeps nothing of it', async () => {
    const m = model('big');
    const id = (await createVideo(m)).body.task_id;
    const job = await leaseTask(id, { models: [m] });
    const declared = await worker('PUT', `/v1/worker/leases/${job.lease_id}/artifacts/big.bin`, randomBytes(100_000));
    expect(declared.status).toBe(413);
    expect(declared.body.code).toBe('payload_too_large');
    const chunk = randomBytes(16_384);
    let sent = 0;
    const stream = new ReadableStream({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const streamed = await fetch(`${h.baseUrl}/v1/worker/leases/${job.lease_id}/artifacts/big.bin`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await complete(job.lease_id, { outputs: [{ artifact: 'big.bin' }] })).status).toBe(422);
  });
});

describe('operators and discovery', () => {
  it('lists the exact models of MODEL_ROUTES and of online workers (never globs), and the workers', async () => {
    const m = model('disc');
    await lease({ worker_id: 'w-disc', models: [m, 't-disc-*'], kinds: ['image'] });
    const discovery = await h.api('GET', '/v1/discovery/models');
    expect(discovery.status).toBe(200);
    expect(discovery.body.count).toBe(discovery.body.data.length);
    const entry = discovery.body.data.find((d: any) => d.id === m);
    expect(entry).toMatchObject({
      provider: 'workers',
      display_name: m,
      capabilities: { image_generation: true, video_generation: false },
    });
    expect(Date.parse(entry.last_verified)).not.toBeNaN();
    expect(discovery.body.data.some((d: any) => d.id.includes('*'))).toBe(false);
    const models = await h.api('GET', '/v1/models');
    expect(models.body.object).toBe('list');
    expect(models.body.data.find((d: any) => d.id === m)).toMatchObject({
      object: 'model',
      owned_by: 'workers',
      created: expect.any(Number),
    });

    const workers = await h.api('GET', '/v1/workers');
    expect(workers.status).toBe(200);
    expect(workers.body.data.find((w: any) => w.id === 'w-disc')).toMatchObject({
      label: 'bootstrap',
      models: [m, 't-disc-*'],
      kinds: ['image'],
      online: true,
      leases_held: 0,
    });
    const metrics = await (await fetch(`${h.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^herald_workers_online [1-9]/m);
    expect(metrics).toMatch(/^herald_worker_leases_total\{outcome="granted"\} [1-9]/m);
    expect(metrics).toMatch(/^herald_worker_lease_wait_seconds_count [1-9]/m);
  });
});

describe('Herald restarted while a lease is out', () => {
  it('keeps the lease in the database: the worker renews and completes it, and the task ends once', async () => {
    let own = await startTestHerald({ ...ENV, WORKER_LEASE_SECONDS: '30' });
    try {
      const call = (base: string, method: string, route: string, body?: unknown) =>
        fetch(base + route, {
          method,
          headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }).then(async (r) => ({ status: r.status, body: await r.json() }));
      const m = model('restart');
      const id = (await own.api('POST', '/v1/videos/generations/async', { model: m, prompt: 'p' })).body.task_id;
      const job = (await call(own.baseUrl, 'POST', '/v1/worker/leases', { worker_id: 'w-r', models: [m] })).body
        .jobs[0];
      expect(job.task_id).toBe(id);
      await own.herald.close();
      own = await startTestHerald({ ...ENV, WORKER_LEASE_SECONDS: '30' }, { keepData: own });
      const renewed = await call(own.baseUrl, 'POST', `/v1/worker/leases/${job.lease_id}/heartbeat`, { progress: 60 });
      expect(renewed).toMatchObject({ status: 200, body: { cancel: false } });
      expect(
        (
          await call(own.baseUrl, 'POST', `/v1/worker/leases/${job.lease_id}/complete`, {
            outputs: [{ url: 'https://cdn.example/r.mp4' }],
          })
        ).status,
      ).toBe(200);
      expect((await own.api('GET', `/v1/tasks/${id}`)).body.status).toBe('completed');
      const events = (await own.api('GET', `/v1/tasks/${id}/events`)).body.data.map((e: any) => e.type);
      expect(events).toEqual(['task.queued', 'task.started', 'task.progress', 'task.completed']);
    } finally {
      await own.stop();
    }
  });
});

describe('Redis flushed while a lease is out and a task waits', () => {
  it('loses nothing: the lease still completes and the waiting task is still leased, never run by the simulator', async () => {
    const m = model('flush');
    const out = (await createVideo(m)).body.task_id;
    const job = await leaseTask(out, { models: [m] });
    const waiting = (await createVideo(m)).body.task_id;
    // Every key under this Herald's prefix, as a FLUSHALL would (the shared test Redis is not flushed whole).
    const { Redis } = await import('ioredis');
    const redis = new Redis('redis://127.0.0.1:6379');
    const keys = await redis.keys(`${h.config.queuePrefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await sleep(800); // a few generation sweeps: none may hand the waiting task to the simulator
    expect(await task(waiting)).toMatchObject({ status: 'pending', progress: 0 });
    expect((await beat(job.lease_id, { progress: 50 })).body.cancel).toBe(false);
    expect((await complete(job.lease_id, { outputs: [{ url: 'https://cdn.example/f.mp4' }] })).status).toBe(200);
    expect((await task(out)).status).toBe('completed');
    expect((await leaseTask(waiting, { models: [m] })).task_id).toBe(waiting);
  });
});

// PostgreSQL only, as scale-out.e2e: two SQLite Heralds in one test process wait for each other's write lock on
// the same libuv threads (a deadlock no real deployment has); on SQLite the write transaction is the lock anyway.
describe.skipIf(testDb() === 'sqlite')('two Herald processes sharing the database', () => {
  it('never hand one task to two workers', async () => {
    const a = await startTestHerald(ENV);
    const b = await startTestHerald(ENV, { keepData: a });
    try {
      const m = model('shared');
      const created = await Promise.all(
        Array.from({ length: 20 }, () => a.api('POST', '/v1/images/generations/async', { model: m, prompt: 'p' })),
      );
      const leaseFrom = (x: TestHerald, n: number) =>
        fetch(`${x.baseUrl}/v1/worker/leases`, {
          method: 'POST',
          headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify({ worker_id: `w-${n}`, models: [m], max_jobs: 3 }),
        }).then(async (r) => (await r.json()).jobs as Array<{ task_id: string }>);
      const rounds = await Promise.all(Array.from({ length: 10 }, (_, n) => leaseFrom(n % 2 ? a : b, n)));
      const leased = rounds.flat().map((j) => j.task_id);
      expect(new Set(leased).size).toBe(leased.length);
      expect(leased.sort()).toEqual(created.map((c) => c.body.task_id).sort());
    } finally {
      await b.herald.close();
      await a.stop();
    }
  });
});
