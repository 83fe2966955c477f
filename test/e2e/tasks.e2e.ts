import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeysService } from '../../src/auth/api-keys.service.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

let h: TestHerald;
beforeAll(async () => {
  h = await startTestHerald();
});
afterAll(async () => {
  await h?.stop();
});

const video = (extra: Record<string, unknown> = {}) => ({
  model: 'minimax-video',
  prompt: 'A serene mountain landscape with clouds',
  duration: 6,
  size: '1280x720',
  ...extra,
});

async function waitForStatus(route: string, statuses: string[]) {
  return eventually(async () => {
    const res = await h.api('GET', route);
    return statuses.includes(res.body.status) ? res : undefined;
  });
}

describe('video generation, as a Conduit client drives it', () => {
  it('accepts a job at once and answers with Conduit’s create shape', async () => {
    const res = await h.api('POST', '/v1/videos/generations/async', video());
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ status: 'pending', estimated_time_to_completion: expect.any(Number) });
    expect(res.body.task_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(res.body.created_at)).not.toBeNaN();
    expect(Date.parse(res.body.estimated_completion_time)).toBeGreaterThanOrEqual(Date.parse(res.body.created_at));
    expect(res.body.check_status_url).toBe(`${h.baseUrl}/v1/videos/generations/tasks/${res.body.task_id}`);
  });

  it('progresses to completed with a downloadable MP4 at result.data[0].url', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', video({ simulate: { duration_ms: 600 } }));
    const route = `/v1/videos/generations/tasks/${created.body.task_id}`;
    const running = await waitForStatus(route, ['processing']);
    expect(running.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(running.body.progress).toBeGreaterThanOrEqual(0);
    const done = await waitForStatus(route, ['completed']);
    expect(done.headers.get('retry-after')).toBeNull();
    expect(done.body).toMatchObject({
      status: 'completed',
      progress: 100,
      error: null,
      kind: 'video',
      model: 'minimax-video',
    });
    expect(done.body.completed_at).not.toBeNull();
    const item = done.body.result.data[0];
    expect(item.metadata).toMatchObject({
      mime_type: 'video/mp4',
      resolution: expect.any(String),
      file_size_bytes: expect.any(Number),
    });
    const file = await fetch(item.url);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await file.arrayBuffer());
    expect(bytes.subarray(4, 8).toString('ascii')).toBe('ftyp');
    expect(bytes.length).toBe(item.metadata.file_size_bytes);
  });

  it('keeps model-specific top-level fields as params', async () => {
    const created = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ camera_motion: 'pan-left', guidance: 7.5 }),
    );
    const task = await h.api('GET', `/v1/tasks/${created.body.task_id}`);
    expect(task.body.params).toMatchObject({ camera_motion: 'pan-left', guidance: 7.5, duration: 6, size: '1280x720' });
  });

  it('cancels a running task within one step, and refuses to cancel it twice', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', video({ simulate: { duration_ms: 5_000 } }));
    const id = created.body.task_id;
    await waitForStatus(`/v1/videos/generations/tasks/${id}`, ['processing']);
    const cancel = await h.api('DELETE', `/v1/videos/generations/${id}`);
    expect(cancel.status).toBe(204);
    const task = await h.api('GET', `/v1/videos/generations/tasks/${id}`);
    expect(task.body).toMatchObject({ status: 'cancelled', error: 'Video generation was cancelled by user request' });
    // The worker notices at its next step and does not bring the task back to life.
    await new Promise((r) => setTimeout(r, 1_200));
    expect((await h.api('GET', `/v1/tasks/${id}`)).body.status).toBe('cancelled');
    const again = await h.api('DELETE', `/v1/videos/generations/${id}`);
    expect(again.status).toBe(409);
    expect(again.headers.get('content-type')).toContain('application/problem+json');
    expect(again.body.code).toBe('task_not_cancellable');
  });

  it('fails deterministically with the requested error, and a retry starts a new attempt', async () => {
    const created = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({
        simulate: { duration_ms: 200, fail_at_percent: 50, error: 'Insufficient credits for video generation' },
      }),
    );
    const id = created.body.task_id;
    const failed = await waitForStatus(`/v1/videos/generations/tasks/${id}`, ['failed']);
    expect(failed.body).toMatchObject({
      status: 'failed',
      error: 'Insufficient credits for video generation',
      error_code: 'simulated_failure',
      result: null,
    });
    expect(failed.body.progress).toBeLessThan(50);

    const retried = await h.api('POST', `/v1/videos/generations/tasks/${id}/retry`, { simulate: { duration_ms: 100 } });
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ task_id: id, status: 'pending', attempt: 2, error: null });
    const done = await waitForStatus(`/v1/videos/generations/tasks/${id}`, ['completed']);
    expect(done.body.attempt).toBe(2);

    const notAgain = await h.api('POST', `/v1/videos/generations/tasks/${id}/retry`);
    expect(notAgain.status).toBe(409);
    expect(notAgain.body.code).toBe('task_not_retryable');
  });

  it('does not time out a task that finishes within timeout_seconds', async () => {
    const created = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ timeout_seconds: 60, simulate: { duration_ms: 800 } }),
    );
    const task = await waitForStatus(`/v1/tasks/${created.body.task_id}`, ['completed', 'timedout', 'failed']);
    expect(task.body.status).toBe('completed');
  });

  it('marks a task timedout once timeout_seconds pass', async () => {
    const created = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ timeout_seconds: 1, simulate: { duration_ms: 10_000 } }),
    );
    const task = await waitForStatus(`/v1/tasks/${created.body.task_id}`, ['timedout']);
    expect(task.body).toMatchObject({ status: 'timedout', error_code: 'timeout' });
    expect(task.body.error).toContain('timeout_seconds');
  });
});

describe('Conduit’s generic task routes (its SDK’s TasksService)', () => {
  it('long-polls a task until it ends, and answers 408 poll_timeout when it does not end in time', async () => {
    const quick = await h.api('POST', '/v1/images/generations/async', {
      model: 'm',
      prompt: 'p',
      simulate: { duration_ms: 300 },
    });
    const done = await h.api('GET', `/v1/tasks/${quick.body.task_id}/poll?timeout=10&interval=2`);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ task_id: quick.body.task_id, status: 'completed', progress: 100 });
    // Already ended: answered at once.
    expect((await h.api('GET', `/v1/tasks/${quick.body.task_id}/poll`)).body.status).toBe('completed');

    const slow = await h.api('POST', '/v1/videos/generations/async', video({ simulate: { duration_ms: 10_000 } }));
    const started = Date.now();
    const timedOut = await h.api('GET', `/v1/tasks/${slow.body.task_id}/poll?timeout=1`);
    expect(timedOut.status).toBe(408);
    expect(timedOut.headers.get('content-type')).toContain('application/problem+json');
    expect(timedOut.body).toMatchObject({ status: 408, code: 'poll_timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect((await h.api('GET', `/v1/tasks/${slow.body.task_id}/poll?timeout=soon`)).status).toBe(422);
    expect((await h.api('GET', '/v1/tasks/00000000-0000-4000-8000-000000000000/poll?timeout=1')).status).toBe(404);

    // POST /v1/tasks/{id}/cancel cancels a task of any kind, as DELETE on its own route does.
    const cancelled = await h.api('POST', `/v1/tasks/${slow.body.task_id}/cancel`, {});
    expect(cancelled.status).toBe(204);
    expect((await waitForStatus(`/v1/tasks/${slow.body.task_id}`, ['cancelled'])).body.status).toBe('cancelled');
    const again = await h.api('POST', `/v1/tasks/${slow.body.task_id}/cancel`, {});
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('task_not_cancellable');
  });

  it(
    'answers a pending long poll with 503 at shutdown instead of holding the shutdown',
    { timeout: 20_000 },
    async () => {
      const own = await startTestHerald();
      const slow = await own.api('POST', '/v1/videos/generations/async', video({ simulate: { duration_ms: 20_000 } }));
      const polled = own.api('GET', `/v1/tasks/${slow.body.task_id}/poll?timeout=20`);
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      await own.stop();
      expect(Date.now() - started).toBeLessThan(5_000);
      const answer = await polled;
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBe('1');
    },
  );
});

describe('image generation', () => {
  it('serves status at /{id}/status and the tasks alias, with a real PNG', async () => {
    const created = await h.api('POST', '/v1/images/generations/async', {
      model: 'dall-e-3',
      prompt: 'a red fox',
      size: '512x256',
      n: 2,
    });
    expect(created.status).toBe(202);
    const id = created.body.task_id;
    expect(created.body.check_status_url).toBe(`${h.baseUrl}/v1/images/generations/${id}/status`);
    const done = await waitForStatus(`/v1/images/generations/${id}/status`, ['completed']);
    expect(done.body.result.data).toHaveLength(2);
    const alias = await h.api('GET', `/v1/images/generations/tasks/${id}`);
    expect(alias.body.task_id).toBe(id);
    const png = Buffer.from(await (await fetch(done.body.result.data[0].url)).arrayBuffer());
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(done.body.result.data[0].metadata).toMatchObject({ mime_type: 'image/png', resolution: '256x128' });
  });

  it('returns b64_json when asked', async () => {
    const created = await h.api('POST', '/v1/images/generations/async', {
      model: 'dall-e-3',
      prompt: 'a fox',
      size: '64x64',
      response_format: 'b64_json',
    });
    const done = await waitForStatus(`/v1/images/generations/${created.body.task_id}/status`, ['completed']);
    const item = done.body.result.data[0];
    expect(item.url).toBeUndefined();
    expect(Buffer.from(item.b64_json, 'base64').subarray(1, 4).toString('ascii')).toBe('PNG');
  });

  it('does not answer a video task on the image routes', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', video());
    const res = await h.api('GET', `/v1/images/generations/${created.body.task_id}/status`);
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('task_not_found');
  });
});

describe('bad input is a clear 4xx problem, never a 500', () => {
  it('names each field with a wrong type or range (422)', async () => {
    const res = await h.api('POST', '/v1/videos/generations/async', {
      model: 42,
      prompt: 'x',
      duration: '6',
      fps: 500,
      n: 0,
      size: 'big',
    });
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({
      type: expect.any(String),
      title: expect.any(String),
      status: 422,
      code: 'validation_failed',
      instance: '/v1/videos/generations/async',
    });
    expect(res.body.errors.map((e: { field: string }) => e.field).sort()).toEqual([
      'duration',
      'fps',
      'model',
      'n',
      'size',
    ]);
  });

  it('requires prompt and model, and a prompt of at most 4,000 characters', async () => {
    const missing = await h.api('POST', '/v1/videos/generations/async', {});
    expect(missing.status).toBe(422);
    expect(missing.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['model', 'prompt']);
    const long = await h.api('POST', '/v1/videos/generations/async', video({ prompt: 'x'.repeat(4_001) }));
    expect(long.status).toBe(422);
    expect(long.body.errors[0].field).toBe('prompt');
  });

  it('answers malformed JSON and a non-object body with 400, and an oversized body with 413', async () => {
    const malformed = await h.api('POST', '/v1/videos/generations/async', '{"model":');
    expect(malformed.status).toBe(400);
    expect(malformed.body.code).toBe('malformed_json');
    const array = await h.api('POST', '/v1/videos/generations/async', '[1,2]');
    expect(array.status).toBe(400);
    expect(array.body.code).toBe('malformed_json');
    const huge = await h.api('POST', '/v1/videos/generations/async', video({ blob: 'x'.repeat(1_100_000) }));
    expect(huge.status).toBe(413);
    expect(huge.body.code).toBe('payload_too_large');
  });

  it('answers a body that is not JSON with 415, reads an empty JSON body as {}, and ignores a trailing slash', async () => {
    const headers = { authorization: `Bearer ${h.apiKey}` };
    const form = await fetch(`${h.baseUrl}/v1/videos/generations/async`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'model=m&prompt=p',
    });
    expect(form.status).toBe(415);
    expect(form.headers.get('content-type')).toContain('application/problem+json');
    expect((await form.json()).code).toBe('unsupported_media_type');
    const created = await h.api('POST', '/v1/videos/generations/async', video({ simulate: { duration_ms: 60_000 } }));
    const cancel = await fetch(`${h.baseUrl}/v1/tasks/${created.body.task_id}/cancel`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
    });
    expect(cancel.status).toBe(204);
    expect((await h.api('GET', `/v1/tasks/${created.body.task_id}/`)).body.status).toBe('cancelled');
  });

  it('validates nested Herald extensions by path', async () => {
    const res = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({
        simulate: { fail_at_percent: 150 },
        webhook_events: ['completed', 'exploded'],
        webhook_retry: { schedule: ['soon'] },
      }),
    );
    expect(res.status).toBe(422);
    const fields = res.body.errors.map((e: { field: string }) => e.field);
    expect(fields).toEqual(
      expect.arrayContaining(['simulate.fail_at_percent', 'webhook_events', 'webhook_retry.schedule']),
    );
  });

  it('refuses webhook URLs that point inside the network, and bad webhook headers', async () => {
    const metadata = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ webhook_url: 'http://169.254.169.254/latest/meta-data' }),
    );
    expect(metadata.status).toBe(422);
    expect(metadata.body.code).toBe('webhook_url_blocked');
    const creds = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ webhook_url: 'https://user:pw@example.com/hook' }),
    );
    expect(creds.status).toBe(422);
    expect(creds.body.errors[0].field).toBe('webhook_url');
    const reserved = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ webhook_url: 'https://example.com/h', webhook_headers: { 'Content-Type': 'text/plain' } }),
    );
    expect(reserved.status).toBe(422);
    const crlf = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({ webhook_url: 'https://example.com/h', webhook_headers: { 'X-A': 'a\r\nX-Injected: 1' } }),
    );
    expect(crlf.status).toBe(422);
    expect(crlf.body.errors[0].field).toBe('webhook_headers.X-A');
  });

  it('stores webhook headers but never returns their values', async () => {
    const created = await h.api(
      'POST',
      '/v1/videos/generations/async',
      video({
        webhook_url: 'https://example.com/hook',
        webhook_headers: { Authorization: 'Bearer very-secret-value' },
      }),
    );
    expect(created.status).toBe(202);
    const task = await h.api('GET', `/v1/tasks/${created.body.task_id}`);
    expect(task.body.webhook).toMatchObject({ url: 'https://example.com/hook', headers: { Authorization: '***' } });
    const list = await h.api('GET', '/v1/tasks?limit=100');
    expect(JSON.stringify([task.body, list.body])).not.toContain('very-secret-value');
  });

  it('answers unknown routes with a 404 problem', async () => {
    const res = await h.api('GET', '/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('route_not_found');
  });
});

describe('API keys and tenants', () => {
  it('requires a bearer key', async () => {
    const none = await fetch(`${h.baseUrl}/v1/tasks`);
    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect(((await none.json()) as { code: string }).code).toBe('unauthorized');
    const wrong = await fetch(`${h.baseUrl}/v1/tasks`, { headers: { authorization: 'Bearer hk_nope' } });
    expect(wrong.status).toBe(401);
  });

  it('hides one tenant’s tasks from another (404)', async () => {
    const mine = await h.api('POST', '/v1/videos/generations/async', video());
    const other = await h.herald.app.get(ApiKeysService).createKey('other-tenant');
    const headers = { authorization: `Bearer ${other.key}` };
    for (const route of [`/v1/tasks/${mine.body.task_id}`, `/v1/videos/generations/tasks/${mine.body.task_id}`]) {
      const res = await h.api('GET', route, undefined, headers);
      expect(res.status).toBe(404);
    }
    expect((await h.api('DELETE', `/v1/videos/generations/${mine.body.task_id}`, undefined, headers)).status).toBe(404);
    const list = await h.api('GET', '/v1/tasks', undefined, headers);
    expect(list.body.data).toEqual([]);
  });
});

describe('listing tasks', () => {
  it('pages newest first with a cursor and filters by kind and status', async () => {
    const key = await h.herald.app.get(ApiKeysService).createKey('lister');
    const headers = { authorization: `Bearer ${key.key}` };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const kind = i % 2 === 0 ? 'videos' : 'images';
      ids.push(
        (
          await h.api(
            'POST',
            `/v1/${kind}/generations/async`,
            { model: 'm', prompt: `p${i}`, simulate: { duration_ms: 0 } },
            headers,
          )
        ).body.task_id,
      );
    }
    const first = await h.api('GET', '/v1/tasks?limit=2', undefined, headers);
    expect(first.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[4], ids[3]]);
    const second = await h.api('GET', `/v1/tasks?limit=2&cursor=${first.body.next_cursor}`, undefined, headers);
    expect(second.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[2], ids[1]]);
    const third = await h.api('GET', `/v1/tasks?limit=2&cursor=${second.body.next_cursor}`, undefined, headers);
    expect(third.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[0]]);
    expect(third.body.next_cursor).toBeNull();
    const images = await h.api('GET', '/v1/tasks?kind=image', undefined, headers);
    expect(images.body.data.map((t: { task_id: string }) => t.task_id)).toEqual([ids[3], ids[1]]);
    await eventually(async () =>
      (await h.api('GET', '/v1/tasks?status=completed', undefined, headers)).body.data.length === 5 ? true : undefined,
    );
    const bad = await h.api('GET', '/v1/tasks?status=done&limit=1000', undefined, headers);
    expect(bad.status).toBe(422);
  });
});

describe('health', () => {
  it('reports live and ready without a key', async () => {
    expect((await fetch(`${h.baseUrl}/health/live`)).status).toBe(200);
    const ready = await fetch(`${h.baseUrl}/health/ready`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { info: unknown }).info).toMatchObject({
      database: { status: 'up' },
      redis: { status: 'up' },
    });
  });
});
