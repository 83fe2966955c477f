import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';

// The worker protocol driven with plain fetch, as a worker written from docs/WORKERS.md would.
const WORKER_TOKEN = `hw_test_${randomBytes(16).toString('hex')}`;
const ENV = {
  MODEL_ROUTES: 'minimax-*=workers,flux-*=workers,wan-2=workers,*=simulator',
  BOOTSTRAP_WORKER_TOKEN: WORKER_TOKEN,
  WORKER_LEASE_SECONDS: '0.6',
  WORKER_MAX_LEASES: '2',
  SWEEP_INTERVAL_MS: '100',
  ARTIFACT_MAX_BYTES: '65536',
};

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

async function worker(method: string, route: string, body?: unknown, { token = WORKER_TOKEN, headers = {} as Record<string, string> } = {}) {
  const raw = body instanceof Uint8Array;
  const res = await fetch(h.baseUrl + route, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && !raw ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
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

const lease = (body: Record<string, unknown>, options?: Parameters<typeof worker>[3]) => worker('POST', '/v1/worker/leases', { worker_id: 'w-test', ...body }, options);
const createVideo = (model: string, extra: Record<string, unknown> = {}) => h.api('POST', '/v1/videos/generations/async', { model, prompt: 'A serene mountain', ...extra });
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
    const created = await createVideo('minimax-video', { duration: 6, size: '1280x720', seed: 7, camera: 'pan', webhook_url: receiver.url() });
    expect(created.status).toBe(202);
    const id = created.body.task_id;
    expect((await task(id)).status).toBe('pending');

    const job = await leaseTask(id, { models: ['minimax-video'], kinds: ['video'] });
    expect(job).toMatchObject({
      task_id: id,
      attempt: 1,
      kind: 'video',
      model: 'minimax-video',
      prompt: 'A serene mountain',
      params: { camera: 'pan' },
      options: { duration: 6, size: '1280x720', fps: null, style: null, n: null, seed: 7, response_format: null },
      resume_from_percent: 0,
      lease_seconds: 0.6,
    });
    expect(Date.parse(job.lease_expires_at)).toBeGreaterThan(Date.now() - 1_000);
    expect((await task(id)).status).toBe('processing');

    const beat = await worker('POST', `/v1/worker/leases/${job.lease_id}/heartbeat`, { progress: 40, message: 'Rendering' });
    expect(beat.status).toBe(200);
    expect(beat.body).toMatchObject({ cancel: false, lease_expires_at: expect.any(String) });
    expect(await task(id)).toMatchObject({ status: 'processing', progress: 40, message: 'Rendering' });

    const bytes = randomBytes(40_000);
    const put = await worker('PUT', `/v1/worker/leases/${job.lease_id}/artifacts/out.mp4`, bytes, { headers: { 'content-type': 'video/mp4' } });
    expect(put.status).toBe(201);
    expect(put.body.url).toMatch(/^http/);

    const done = await worker('POST', `/v1/worker/leases/${job.lease_id}/complete`, { outputs: [{ artifact: 'out.mp4', metadata: { resolution: '1280x720' } }] });
    expect(done.status).toBe(200);
    const finished = await task(id);
    expect(finished).toMatchObject({ status: 'completed', progress: 100, error: null });
    expect(finished.result.data[0].url).toBe(put.body.url);
    expect(finished.result.data[0].metadata).toMatchObject({ mime_type: 'video/mp4', file_size_bytes: 40_000, resolution: '1280x720', seed: 7 });
    const file = await fetch(finished.result.data[0].url);
    expect(file.headers.get('content-type')).toBe('video/mp4');
    expect(Buffer.from(await file.arrayBuffer()).equals(bytes)).toBe(true);

    const hooks = await eventually(async () => {
      const got = receiver.forTask(id);
      return got.some((r) => r.body.status === 'completed') ? got : undefined;
    });
    const terminal = hooks.find((r) => r.body.status === 'completed')!;
    expect(terminal.body).toMatchObject({ webhook_type: 'video_generation_completed', video_url: put.body.url });
    expect(hooks.some((r) => r.body.webhook_type === 'video_generation_progress' && r.body.progress_percentage === 40)).toBe(true);

    // The lease ended with the completion.
    const again = await worker('POST', `/v1/worker/leases/${job.lease_id}/complete`, { outputs: [{ artifact: 'out.mp4' }] });
    expect(again.status).toBe(410);
    expect(again.body.code).toBe('lease_expired');
  });
});
