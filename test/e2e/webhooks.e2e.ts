import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver, type ReceivedWebhook, type Reply } from '../support/receiver.js';

const AUTH = 'Bearer your-webhook-secret';
let h: TestHerald;
let receiver: Receiver;
let secret: string;

beforeAll(async () => {
  h = await startTestHerald({ WEBHOOK_RETRY_SCHEDULE: '0s,50ms,50ms,50ms', WEBHOOK_TIMEOUT_MS: '1000' });
  secret = (await h.api('GET', '/v1/webhooks/secret')).body.secret;
  receiver = await startReceiver({
    authorization: AUTH,
    respond: (req): Reply => {
      const mode = (req.body?.metadata as { mode?: string } | undefined)?.mode;
      const seen = receiver.received.filter((r) => r.body?.event_id === req.body?.event_id).length;
      if (mode === 'flaky' && req.body.status === 'completed' && seen <= 2) return { status: 500, body: 'try later' };
      if (mode === 'gone') return { status: 410, body: 'gone' };
      if (mode === 'bad') return { status: 400, body: 'no thanks' };
      if (mode === 'down') return { status: 503, body: 'x'.repeat(5_000) };
      if (mode === 'redirect') return { status: 302, headers: { location: '/elsewhere' } };
      if (mode === 'throttle' && seen === 1) return { status: 429, headers: { 'retry-after': '1' } };
      return { status: 200, body: 'OK' };
    },
  });
});
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

async function submit(kind: 'videos' | 'images', extra: Record<string, unknown> = {}) {
  const res = await h.api('POST', `/v1/${kind}/generations/async`, {
    model: kind === 'videos' ? 'minimax-video' : 'dall-e-3',
    prompt: 'A serene mountain landscape with clouds',
    webhook_url: receiver.url(),
    webhook_headers: { Authorization: AUTH, 'X-Custom-Header': 'custom-value' },
    simulate: { duration_ms: 200 },
    ...extra,
  });
  expect(res.status).toBe(202);
  return res.body.task_id as string;
}

const terminal = (w: ReceivedWebhook) => w.body?.webhook_type?.endsWith('_completed');
const waitForTerminal = (taskId: string) =>
  eventually(async () => (receiver.forTask(taskId).some(terminal) ? receiver.forTask(taskId) : undefined));
async function deliveriesOf(taskId: string) {
  return (await h.api('GET', `/v1/tasks/${taskId}/deliveries`)).body.data as Array<{
    id: string;
    status: string;
    event_type: string;
    attempts: number;
  }>;
}
async function settled(taskId: string) {
  return eventually(async () => {
    const list = await deliveriesOf(taskId);
    return list.length && list.every((d) => !['pending', 'sending'].includes(d.status)) ? list : undefined;
  });
}

describe('per-request webhooks (seeds/001)', () => {
  it('delivers progress then completion with Conduit’s payloads and the caller’s headers', async () => {
    const id = await submit('videos', { webhook_metadata: { order: 'A-1' } });
    const hooks = await waitForTerminal(id);
    const done = hooks.find(terminal)!;
    expect(done.path).toBe('/webhooks/video-complete');
    expect(done.headers.authorization).toBe(AUTH);
    expect(done.headers['x-custom-header']).toBe('custom-value');
    expect(done.headers['content-type']).toBe('application/json');
    expect(done.headers['user-agent']).toMatch(/^Herald\//);
    expect(done.body).toMatchObject({
      task_id: id,
      status: 'completed',
      webhook_type: 'video_generation_completed',
      event_type: 'video_generation_completed',
      video_url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/v1\/artifacts\/.+\.mp4$/),
      generation_duration_seconds: expect.any(Number),
      model: 'minimax-video',
      prompt: 'A serene mountain landscape with clouds',
      metadata: { order: 'A-1' },
    });
    expect(Date.parse(done.body.timestamp)).not.toBeNaN();
    const progress = hooks.filter((w) => w.body.webhook_type === 'video_generation_progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0].body).toMatchObject({
      task_id: id,
      status: 'processing',
      progress_percentage: expect.any(Number),
      message: expect.any(String),
      estimated_seconds_remaining: expect.any(Number),
    });
    // Sequences only grow, and nothing comes after the terminal webhook.
    const sequences = hooks.map((w) => w.body.sequence as number);
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    expect(hooks.at(-1)).toBe(done);
  });

  it('signs every webhook: Standard Webhooks (verified by the official library) and X-Signature', async () => {
    const id = await submit('images');
    const hooks = await waitForTerminal(id);
    expect(secret).toMatch(/^whsec_/);
    const verifier = new Webhook(secret);
    for (const w of hooks) {
      expect(w.headers['webhook-id']).toBe(w.body.event_id);
      expect(Math.abs(Number(w.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
      expect(verifier.verify(w.raw, w.headers as Record<string, string>)).toEqual(w.body);
      const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
      expect(w.headers['x-signature']).toBe(`sha256=${createHmac('sha256', key).update(w.raw).digest('hex')}`);
      // As Conduit's server marks its webhooks.
      expect(w.headers['x-webhook-type']).toBe(w.body.webhook_type.endsWith('_progress') ? 'progress' : 'completion');
      expect(w.headers['x-webhook-timestamp']).toBe(w.headers['webhook-timestamp']);
    }
    expect(hooks.find(terminal)!.body).toMatchObject({
      webhook_type: 'image_generation_completed',
      image_url: expect.stringContaining('.png'),
      image_urls: [expect.stringContaining('.png')],
    });
  });

  it('reports failure and cancellation with Conduit’s error text', async () => {
    const failed = await submit('videos', {
      simulate: { duration_ms: 100, fail_at_percent: 30, error: 'Insufficient credits for video generation' },
    });
    const f = (await waitForTerminal(failed)).find(terminal)!;
    expect(f.body).toMatchObject({
      status: 'failed',
      webhook_type: 'video_generation_completed',
      error: 'Insufficient credits for video generation',
    });

    const cancelled = await submit('videos', { simulate: { duration_ms: 5_000 } });
    await eventually(async () =>
      (await h.api('GET', `/v1/tasks/${cancelled}`)).body.status === 'processing' ? true : undefined,
    );
    expect((await h.api('DELETE', `/v1/videos/generations/${cancelled}`)).status).toBe(204);
    const c = (await waitForTerminal(cancelled)).find(terminal)!;
    expect(c.body).toMatchObject({ status: 'cancelled', error: 'Video generation was cancelled by user request' });
  });

  it('retries after two failures and succeeds with one webhook-id', async () => {
    const id = await submit('videos', { webhook_events: ['completed'], webhook_metadata: { mode: 'flaky' } });
    await eventually(async () => (receiver.forTask(id).length === 3 ? true : undefined));
    const tries = receiver.forTask(id);
    expect(new Set(tries.map((w) => w.headers['webhook-id'])).size).toBe(1);
    const [delivery] = await settled(id);
    expect(delivery).toMatchObject({ status: 'succeeded', attempts: 3 });
    const detail = (await h.api('GET', `/v1/deliveries/${delivery.id}`)).body;
    expect(detail.attempt_log.map((a: { status_code: number; outcome: string }) => [a.status_code, a.outcome])).toEqual(
      [
        [500, 'retry'],
        [500, 'retry'],
        [200, 'succeeded'],
      ],
    );
    expect(detail.attempt_log[0].response_snippet).toBe('try later');
    expect(detail.attempt_log[0].duration_ms).toEqual(expect.any(Number));
  });

  it('stops at once on 410 Gone and on other 4xx', async () => {
    for (const mode of ['gone', 'bad']) {
      const id = await submit('videos', { webhook_events: ['completed'], webhook_metadata: { mode } });
      const [delivery] = await settled(id);
      expect(delivery).toMatchObject({ status: 'failed', attempts: 1 });
      await new Promise((r) => setTimeout(r, 200));
      expect(receiver.forTask(id)).toHaveLength(1);
    }
  });

  it('does not follow redirects', async () => {
    const id = await submit('videos', {
      webhook_events: ['completed'],
      webhook_metadata: { mode: 'redirect' },
      webhook_retry: { max_attempts: 2 },
    });
    const [delivery] = await settled(id);
    expect(delivery).toMatchObject({ status: 'failed', attempts: 2 });
    expect(receiver.received.some((w) => w.path === '/elsewhere')).toBe(false);
  });

  it('gives up after the per-request attempt budget, keeps the first 1 KB of each answer, and can redeliver', async () => {
    const id = await submit('videos', {
      webhook_events: ['completed'],
      webhook_metadata: { mode: 'down' },
      webhook_retry: { max_attempts: 3, schedule: ['0s', '20ms', '20ms'] },
    });
    const [delivery] = await settled(id);
    expect(delivery).toMatchObject({ status: 'failed', attempts: 3 });
    const detail = (await h.api('GET', `/v1/deliveries/${delivery.id}`)).body;
    expect(detail.attempt_log[0].response_snippet).toHaveLength(1_024);
    expect(detail.last_error).toContain('gave up after 3 attempts');

    const again = await h.api('POST', `/v1/deliveries/${delivery.id}/redeliver`);
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ status: 'pending', event_id: detail.event_id });
    await eventually(async () => (receiver.forTask(id).length >= 6 ? true : undefined));
    expect(new Set(receiver.forTask(id).map((w) => w.headers['webhook-id']))).toEqual(new Set([detail.event_id]));
  });

  it('honours Retry-After on 429', async () => {
    const id = await submit('videos', { webhook_events: ['completed'], webhook_metadata: { mode: 'throttle' } });
    await eventually(async () => (receiver.forTask(id).length === 2 ? true : undefined), { timeoutMs: 5_000 });
    const [first, second] = receiver.forTask(id);
    expect(second.at - first.at).toBeGreaterThanOrEqual(950);
  });

  it('sends only the events asked for in webhook_events', async () => {
    const id = await submit('videos', { webhook_events: ['completed'] });
    await waitForTerminal(id);
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.forTask(id).map((w) => w.body.webhook_type)).toEqual(['video_generation_completed']);
  });

  it('never shows or stores the caller’s header values', async () => {
    const id = await submit('videos', { webhook_events: ['completed'] });
    const [delivery] = await settled(id);
    const detail = (await h.api('GET', `/v1/deliveries/${delivery.id}`)).body;
    expect(detail.attempt_log[0].request_headers).toMatchObject({
      Authorization: '***',
      'X-Custom-Header': '***',
      'X-Signature': '***',
      'webhook-id': detail.event_id,
    });
    expect(detail.attempt_log[0].request_headers['webhook-signature']).toBe('v1,***');
    const task = (await h.api('GET', `/v1/tasks/${id}`)).body;
    expect(task.webhook.last_delivery).toMatchObject({ id: delivery.id, status: 'succeeded', status_code: 200 });
    expect(JSON.stringify([detail, task, await deliveriesOf(id)])).not.toContain('your-webhook-secret');
    expect(JSON.stringify([detail, task])).not.toContain('custom-value');
  });

  it('hides deliveries of other tenants', async () => {
    const id = await submit('videos', { webhook_events: ['completed'] });
    const [delivery] = await settled(id);
    const { ApiKeysService } = await import('../../src/auth/api-keys.service.js');
    const other = await h.herald.app.get(ApiKeysService).createKey('someone-else');
    const headers = { authorization: `Bearer ${other.key}` };
    expect((await h.api('GET', `/v1/deliveries/${delivery.id}`, undefined, headers)).status).toBe(404);
    expect((await h.api('POST', `/v1/deliveries/${delivery.id}/redeliver`, undefined, headers)).status).toBe(404);
    expect((await h.api('GET', `/v1/tasks/${id}/deliveries`, undefined, headers)).status).toBe(404);
    const theirs = (await h.api('GET', '/v1/webhooks/secret', undefined, headers)).body.secret;
    expect(theirs).toMatch(/^whsec_/);
    expect(theirs).not.toBe(secret);
  });
});
