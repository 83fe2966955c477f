import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let h: TestHerald;
beforeAll(async () => {
  h = await startTestHerald({ SSE_HEARTBEAT_MS: '100' });
});
afterAll(async () => {
  await h?.stop();
});

const job = (extra: Record<string, unknown> = {}) => ({
  model: 'minimax-video',
  prompt: 'A serene mountain',
  ...extra,
});

/** Reads an SSE stream until it closes (or a bounded time passes); returns frames and comments. */
function readStream(
  route: string,
  headers: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<{
  status: number;
  type?: string;
  frames: Array<{ id?: string; event?: string; data?: any }>;
  comments: string[];
}> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${h.baseUrl}${route}`,
      { headers: { authorization: `Bearer ${h.apiKey}`, ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        const timer = setTimeout(() => req.destroy(), timeoutMs);
        res.on('close', () => {
          clearTimeout(timer);
          const frames: Array<{ id?: string; event?: string; data?: any }> = [];
          const comments: string[] = [];
          for (const block of text.split('\n\n')) {
            const frame: { id?: string; event?: string; data?: any } = {};
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) comments.push(line);
              else if (line.startsWith('id: ')) frame.id = line.slice(4);
              else if (line.startsWith('event: ')) frame.event = line.slice(7);
              else if (line.startsWith('data: ')) frame.data = JSON.parse(line.slice(6));
            }
            if (frame.event) frames.push(frame);
          }
          resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], frames, comments });
        });
      },
    );
    req.on('error', reject);
  });
}

describe('Idempotency-Key', () => {
  it('returns the first answer to a repeat with the same body, without creating a second task', async () => {
    const key = `order-${Date.now()}`;
    const first = await h.api('POST', '/v1/videos/generations/async', job(), { 'idempotency-key': key });
    const again = await h.api('POST', '/v1/videos/generations/async', job(), { 'idempotency-key': key });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
  });

  it('refuses the same key with a different body (422) and while the first is still running (409)', async () => {
    const key = `k-${Date.now()}`;
    const slow = h.api('POST', '/v1/videos/generations/async', job({ simulate: { duration_ms: 400 } }), {
      'idempotency-key': key,
      prefer: 'wait=5',
    });
    await new Promise((r) => setTimeout(r, 100));
    const during = await h.api('POST', '/v1/videos/generations/async', job({ simulate: { duration_ms: 400 } }), {
      'idempotency-key': key,
      prefer: 'wait=5',
    });
    expect(during.status).toBe(409);
    expect(during.body.code).toBe('idempotency_in_progress');
    expect((await slow).status).toBe(200);
    const different = await h.api('POST', '/v1/videos/generations/async', job({ prompt: 'something else' }), {
      'idempotency-key': key,
    });
    expect(different.status).toBe(422);
    expect(different.body.code).toBe('idempotency_conflict');
  });

  it('keeps keys per tenant and lets a failed request be tried again', async () => {
    const key = `bad-${Date.now()}`;
    const bad = await h.api('POST', '/v1/videos/generations/async', { prompt: 'x' }, { 'idempotency-key': key });
    expect(bad.status).toBe(422);
    const fixed = await h.api('POST', '/v1/videos/generations/async', job(), { 'idempotency-key': key });
    expect(fixed.status).toBe(202);
  });

  it('also covers registered endpoints', async () => {
    const key = `ep-${Date.now()}`;
    const body = { url: 'https://example.com/hook' };
    const a = await h.api('POST', '/v1/webhooks', body, { 'idempotency-key': key });
    const b = await h.api('POST', '/v1/webhooks', body, { 'idempotency-key': key });
    expect(a.status).toBe(201);
    expect(b.body.id).toBe(a.body.id);
  });
});

describe('Prefer: wait', () => {
  it('answers 200 with the finished task when it ends within the wait', async () => {
    const t0 = Date.now();
    const res = await h.api('POST', '/v1/images/generations/async', job({ simulate: { duration_ms: 300 } }), {
      prefer: 'wait=10',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=10');
    expect(res.body).toMatchObject({ status: 'completed', progress: 100, check_status_url: expect.any(String) });
    expect(res.body.result.data[0].url).toContain('/v1/artifacts/');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('answers 202 as usual once the wait runs out', async () => {
    const t0 = Date.now();
    const res = await h.api('POST', '/v1/videos/generations/async', job({ simulate: { duration_ms: 5_000 } }), {
      prefer: 'wait=1',
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('preference-applied')).toBe('wait=1');
    expect(['pending', 'processing']).toContain(res.body.status);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    await h.api('DELETE', `/v1/videos/generations/${res.body.task_id}`);
  });
});

describe('event history and streaming', () => {
  it('lists a task’s events in order with their sequence', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', job({ simulate: { duration_ms: 200 } }), {
      prefer: 'wait=10',
    });
    const events = (await h.api('GET', `/v1/tasks/${created.body.task_id}/events`)).body.data;
    expect(events.map((e: { sequence: number }) => e.sequence)).toEqual(events.map((_: unknown, i: number) => i + 1));
    expect(events[0].type).toBe('task.queued');
    expect(events[1].type).toBe('task.started');
    expect(events.at(-1)).toMatchObject({ type: 'task.completed', data: { status: 'completed', progress: 100 } });
    const later = (await h.api('GET', `/v1/tasks/${created.body.task_id}/events?after=${events.length - 1}`)).body.data;
    expect(later).toHaveLength(1);
  });

  it('streams events live as SSE with heartbeats, and closes after the terminal event', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', job({ simulate: { duration_ms: 800 } }));
    const stream = await readStream(`/v1/tasks/${created.body.task_id}/events/stream`);
    expect(stream.status).toBe(200);
    expect(stream.type).toContain('text/event-stream');
    const sequences = stream.frames.map((f) => Number(f.id));
    expect(sequences).toEqual(sequences.map((_, i) => i + 1));
    expect(stream.frames[0].event).toBe('task.queued');
    expect(stream.frames.at(-1)).toMatchObject({
      event: 'task.completed',
      data: { task_id: created.body.task_id, type: 'task.completed' },
    });
    expect(stream.comments.some((c) => c.startsWith(': heartbeat'))).toBe(true);
  });

  it('resumes after Last-Event-ID', async () => {
    const created = await h.api('POST', '/v1/images/generations/async', job({ simulate: { duration_ms: 100 } }), {
      prefer: 'wait=10',
    });
    const all = (await h.api('GET', `/v1/tasks/${created.body.task_id}/events`)).body.data;
    const resumed = await readStream(`/v1/tasks/${created.body.task_id}/events/stream`, { 'last-event-id': '3' });
    expect(resumed.frames.map((f) => Number(f.id))).toEqual(all.slice(3).map((e: { sequence: number }) => e.sequence));
  });

  it('answers 404 for another tenant’s stream', async () => {
    const { ApiKeysService } = await import('../../src/auth/api-keys.service.js');
    const other = await h.herald.app.get(ApiKeysService).createKey('stream-stranger');
    const created = await h.api('POST', '/v1/videos/generations/async', job());
    const res = await readStream(`/v1/tasks/${created.body.task_id}/events/stream`, {
      authorization: `Bearer ${other.key}`,
    });
    expect(res.status).toBe(404);
  });
});
