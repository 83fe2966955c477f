import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeysService } from '../../src/auth/api-keys.service.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';

let h: TestHerald;
let receiver: Receiver;
const outage = new Set<string>();

beforeAll(async () => {
  h = await startTestHerald({ WEBHOOK_RETRY_SCHEDULE: '0s,30ms,30ms' });
  receiver = await startReceiver({
    respond: (req) => {
      if (req.path === '/gone') return { status: 410 };
      if (outage.has(req.path)) return { status: 503 };
      return { status: 200 };
    },
  });
});
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

const at = (path: string) => receiver.received.filter((r) => r.path === path);
async function endpoint(path: string, body: Record<string, unknown> = {}) {
  const res = await h.api('POST', '/v1/webhooks', { url: receiver.url(path), ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; secret: string; status: string };
}
async function runTask() {
  const res = await h.api('POST', '/v1/images/generations/async', {
    model: 'm',
    prompt: 'p',
    simulate: { duration_ms: 100 },
  });
  return res.body.task_id as string;
}

describe('registered endpoints', () => {
  it('creates, shows, lists, updates and deletes, revealing the secret only on create', async () => {
    const created = await endpoint('/crud', {
      events: ['task.completed'],
      description: 'orders',
      headers: { Authorization: 'Bearer hidden-value' },
    });
    expect(created).toMatchObject({
      status: 'enabled',
      events: ['task.completed'],
      description: 'orders',
      headers: { Authorization: '***' },
      last_delivery: null,
    });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const shown = await h.api('GET', `/v1/webhooks/${created.id}`);
    expect(shown.body.secret).toBeUndefined();
    const list = await h.api('GET', '/v1/webhooks');
    expect(list.body.data.map((e: { id: string }) => e.id)).toContain(created.id);
    expect(JSON.stringify([shown.body, list.body])).not.toContain('hidden-value');
    const patched = await h.api('PATCH', `/v1/webhooks/${created.id}`, {
      events: ['task.failed', 'task.cancelled'],
      description: 'ops',
    });
    expect(patched.body).toMatchObject({ events: ['task.failed', 'task.cancelled'], description: 'ops' });
    expect((await h.api('DELETE', `/v1/webhooks/${created.id}`)).status).toBe(204);
    expect((await h.api('GET', `/v1/webhooks/${created.id}`)).body.code).toBe('endpoint_not_found');
  });

  it('validates url, events, headers and secret', async () => {
    const bad = await h.api('POST', '/v1/webhooks', {
      url: 'ftp://x',
      events: ['task.exploded'],
      headers: { Host: 'x' },
      secret: 'plain',
    });
    expect(bad.status).toBe(422);
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['events', 'secret']);
    const blocked = await h.api('POST', '/v1/webhooks', { url: 'http://169.254.169.254/' });
    expect(blocked.body.code).toBe('webhook_url_blocked');
    const header = await h.api('POST', '/v1/webhooks', { url: receiver.url('/x'), headers: { Host: 'evil' } });
    expect(header.body.errors[0].field).toBe('headers.Host');
    const mine = await h.api('POST', '/v1/webhooks', {
      url: receiver.url('/own-secret'),
      secret: 'whsec_' + Buffer.alloc(24, 7).toString('base64'),
    });
    expect(mine.body.secret).toBe('whsec_' + Buffer.alloc(24, 7).toString('base64'));
  });

  it('fans every event out to subscribed endpoints as signed envelopes', async () => {
    const onlyDone = await endpoint('/only-completed', { events: ['task.completed'] });
    const all = await endpoint('/all', { events: ['*'] });
    const id = await runTask();
    await eventually(async () =>
      at('/only-completed').some((r) => r.body.data.task_id === id) &&
      at('/all').some((r) => r.body.type === 'task.completed' && r.body.data.task_id === id)
        ? true
        : undefined,
    );
    const mine = (path: string) => at(path).filter((r) => r.body.data?.task_id === id);
    expect(mine('/only-completed').map((r) => r.body.type)).toEqual(['task.completed']);
    const types = mine('/all').map((r) => r.body.type);
    expect(types[0]).toBe('task.queued');
    expect(types).toContain('task.started');
    expect(types.at(-1)).toBe('task.completed');
    const done = mine('/only-completed')[0];
    expect(done.body).toMatchObject({
      id: expect.any(String),
      type: 'task.completed',
      created: expect.any(Number),
      data: { task_id: id, status: 'completed', progress: 100 },
    });
    expect(done.body.data.result.data[0].url).toContain('/v1/artifacts/');
    expect(new Webhook(onlyDone.secret).verify(done.raw, done.headers as Record<string, string>)).toEqual(done.body);
    expect(() => new Webhook(all.secret).verify(done.raw, done.headers as Record<string, string>)).toThrow();
    const shown = await eventually(async () => {
      const e = (await h.api('GET', `/v1/webhooks/${onlyDone.id}`)).body;
      return e.last_delivery ? e : undefined;
    });
    expect(shown.last_delivery).toMatchObject({ status_code: 200, outcome: 'succeeded' });
  });

  it('sends a webhook.test event on request', async () => {
    const e = await endpoint('/test-me', { events: ['task.failed'] });
    const res = await h.api('POST', `/v1/webhooks/${e.id}/test`);
    expect(res.status).toBe(202);
    const hook = await eventually(async () => at('/test-me')[0]);
    expect(hook.body).toMatchObject({ type: 'webhook.test', data: { endpoint_id: e.id } });
    expect(new Webhook(e.secret).verify(hook.raw, hook.headers as Record<string, string>)).toBeTruthy();
  });

  it('signs with the old and the new secret for a while after rotation', async () => {
    const e = await endpoint('/rotating');
    const rotated = await h.api('POST', `/v1/webhooks/${e.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(e.secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at) - Date.now()).toBeGreaterThan(23 * 3_600_000);
    await h.api('POST', `/v1/webhooks/${e.id}/test`);
    const hook = await eventually(async () => at('/rotating')[0]);
    expect(String(hook.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const secret of [e.secret, rotated.body.secret]) {
      expect(new Webhook(secret).verify(hook.raw, hook.headers as Record<string, string>)).toMatchObject({
        type: 'webhook.test',
      });
    }
  });

  it('disables an endpoint that answers 410 Gone, tells the others, and can be enabled again', async () => {
    const watcher = await endpoint('/watcher', { events: ['webhook.disabled'] });
    const gone = await endpoint('/gone', { events: ['task.completed'] });
    await runTask();
    const disabled = await eventually(async () => {
      const e = (await h.api('GET', `/v1/webhooks/${gone.id}`)).body;
      return e.status === 'disabled' ? e : undefined;
    });
    expect(disabled.disabled_reason).toContain('410');
    const notice = await eventually(async () => at('/watcher').find((r) => r.body.data.endpoint_id === gone.id));
    expect(notice.body).toMatchObject({
      type: 'webhook.disabled',
      data: { endpoint_id: gone.id, url: receiver.url('/gone'), reason: expect.stringContaining('410') },
    });
    expect(new Webhook(watcher.secret).verify(notice.raw, notice.headers as Record<string, string>)).toBeTruthy();
    expect((await h.api('POST', `/v1/webhooks/${gone.id}/test`)).body.code).toBe('endpoint_disabled');
    const enabled = await h.api('PATCH', `/v1/webhooks/${gone.id}`, { status: 'enabled' });
    expect(enabled.body).toMatchObject({ status: 'enabled', disabled_reason: null });
  });

  it('recovers the deliveries that failed during an outage', async () => {
    outage.add('/flaky');
    const e = await endpoint('/flaky', { events: ['task.completed'] });
    const since = new Date(Date.now() - 1_000).toISOString();
    const ids = [await runTask(), await runTask()];
    const failed = await eventually(async () => {
      const page = (await h.api('GET', `/v1/webhooks/${e.id}/deliveries?status=failed`)).body;
      return page.data.length === 2 ? page : undefined;
    });
    expect(failed.data[0].attempts).toBe(3);
    outage.delete('/flaky');
    const recovered = await h.api('POST', `/v1/webhooks/${e.id}/recover`, { since });
    expect(recovered.status).toBe(202);
    expect(recovered.body.recovered).toBe(2);
    await eventually(async () =>
      ids.every((id) =>
        at('/flaky').some((r) => r.body.data.task_id === id && r.body.type === 'task.completed' && true),
      )
        ? true
        : undefined,
    );
    const page = await eventually(async () => {
      const p = (await h.api('GET', `/v1/webhooks/${e.id}/deliveries?status=succeeded`)).body;
      return p.data.length === 2 ? p : undefined;
    });
    expect(page.stats).toMatchObject({ succeeded: 2, failed: 2, success_rate: 0.5 });
    expect((await h.api('POST', `/v1/webhooks/${e.id}/recover`, { since: 'yesterday' })).status).toBe(422);
  });

  it('lists the event catalogue with a schema for each type', async () => {
    const res = await h.api('GET', '/v1/event-types');
    const types = res.body.data.map((t: { type: string }) => t.type);
    expect(types).toEqual([
      'task.queued',
      'task.started',
      'task.progress',
      'task.completed',
      'task.failed',
      'task.cancelled',
      'webhook.test',
      'webhook.disabled',
    ]);
    for (const t of res.body.data) expect(t.schema.type).toBe('object');
  });

  it('hides one tenant’s endpoints from another (404)', async () => {
    const e = await endpoint('/private');
    const other = await h.herald.app.get(ApiKeysService).createKey('endpoint-stranger');
    const headers = { authorization: `Bearer ${other.key}` };
    for (const [method, route, body] of [
      ['GET', `/v1/webhooks/${e.id}`],
      ['PATCH', `/v1/webhooks/${e.id}`, { description: 'x' }],
      ['DELETE', `/v1/webhooks/${e.id}`],
      ['POST', `/v1/webhooks/${e.id}/test`],
      ['POST', `/v1/webhooks/${e.id}/rotate-secret`],
      ['POST', `/v1/webhooks/${e.id}/recover`, { since: new Date().toISOString() }],
      ['GET', `/v1/webhooks/${e.id}/deliveries`],
    ] as Array<[string, string, unknown?]>) {
      const res = await h.api(method, route, body, headers);
      expect(res.status, `${method} ${route}`).toBe(404);
    }
    expect((await h.api('GET', '/v1/webhooks', undefined, headers)).body.data).toEqual([]);
  });
});

describe('auto-disable after continuous failure', () => {
  it('disables an endpoint whose deliveries keep failing for ENDPOINT_DISABLE_AFTER_HOURS', async () => {
    const quick = await startTestHerald({
      WEBHOOK_RETRY_SCHEDULE: '0s,200ms,200ms,200ms',
      ENDPOINT_DISABLE_AFTER_HOURS: '0.0001',
    });
    try {
      outage.add('/always-down');
      const e = (
        await quick.api('POST', '/v1/webhooks', { url: receiver.url('/always-down'), events: ['task.completed'] })
      ).body;
      await quick.api('POST', '/v1/images/generations/async', {
        model: 'm',
        prompt: 'p',
        simulate: { duration_ms: 0 },
      });
      const disabled = await eventually(async () => {
        const shown = (await quick.api('GET', `/v1/webhooks/${e.id}`)).body;
        return shown.status === 'disabled' ? shown : undefined;
      });
      expect(disabled.disabled_reason).toContain('failed for 0.0001 hours');
      expect(disabled.failing_since).not.toBeNull();
    } finally {
      await quick.stop();
    }
  });
});
