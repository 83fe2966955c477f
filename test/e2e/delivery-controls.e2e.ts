import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, eventually, startTestHerald, testDb, type TestHerald } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { startReceiver, type Receiver, type ReceivedWebhook } from '../support/receiver.js';

let h: TestHerald;
let receiver: Receiver;
const down = new Set<string>();
// Paths whose requests the receiver answers only after a while.
const slowPaths = new Set<string>();
// Paths whose next n requests fail.
const failNext = new Map<string, number>();
// The requests answered 2xx, in the order they came.
const answeredOk: ReceivedWebhook[] = [];

// Ten attempts 100 ms apart: without a circuit, a receiver down for 3 s would use them all up in under a second.
const ATTEMPTS = 10;

beforeAll(async () => {
  h = await startTestHerald({
    WEBHOOK_RETRY_SCHEDULE: ['0s', ...Array(ATTEMPTS - 1).fill('100ms')].join(','),
    CIRCUIT_FAILURES: '3',
    CIRCUIT_COOLDOWN_MS: '300',
  });
  receiver = await startReceiver({
    respond: (req) => {
      const failing = failNext.get(req.path) ?? 0;
      if (failing > 0) failNext.set(req.path, failing - 1);
      if (down.has(req.path) || failing > 0) return { status: 503 };
      answeredOk.push(req);
      return { status: 200, delayMs: slowPaths.has(req.path) ? 1_500 : 0 };
    },
  });
});
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const at = (path: string) => receiver.received.filter((r) => r.path === path);
async function endpoint(path: string, body: Record<string, unknown> = {}) {
  const res = await h.api('POST', '/v1/webhooks', { url: receiver.url(path), ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; secret: string };
}
async function openings(): Promise<number> {
  const res = await fetch(`${h.baseUrl}/metrics`, { headers: { authorization: `Bearer ${h.apiKey}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith('herald_webhook_circuit_openings_total'));
  return Number(line?.split(' ')[1] ?? 0);
}

describe('circuit breaker', () => {
  it('opens after consecutive failures, holds deliveries without spending attempts, probes, and delivers everything once the receiver is back', async () => {
    const e = await endpoint('/down');
    down.add('/down');
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await h.api('POST', `/v1/webhooks/${e.id}/test`)).body.id);

    const open = await eventually(async () => {
      const v = (await h.api('GET', `/v1/webhooks/${e.id}`)).body;
      return v.circuit === 'open' ? v : undefined;
    });
    expect(Date.parse(open.circuit_until)).toBeGreaterThan(Date.now() - 1_000);
    const openedAt = at('/down').length;
    const openingsAtFirst = await openings();
    await new Promise((r) => setTimeout(r, 3_000));
    // While it was down and the circuit open, only probes went out: each failed probe opened the circuit again.
    const duringOutage = at('/down').length - openedAt;
    expect(duringOutage).toBeLessThanOrEqual((await openings()) - openingsAtFirst + 1);
    expect(await openings()).toBeGreaterThan(openingsAtFirst);

    down.delete('/down');
    const succeeded = await eventually(
      async () => {
        const rows = await Promise.all(ids.map(async (id) => (await h.api('GET', `/v1/deliveries/${id}`)).body));
        return rows.every((d) => d.status === 'succeeded') ? rows : undefined;
      },
      { timeoutMs: 15_000 },
    );
    // Every event arrived, and no delivery ran out of attempts (the outage outlasted the whole retry schedule).
    const received = new Set(
      at('/down')
        .filter((r) => r.headers['webhook-id'])
        .map((r) => r.headers['webhook-id']),
    );
    expect(received.size).toBe(ids.length);
    const attempts = succeeded.reduce((n, d) => n + d.attempt_log.length, 0);
    expect(attempts).toBe(at('/down').length);
    for (const d of succeeded) expect(d.attempts).toBeLessThan(ATTEMPTS);
    await eventually(async () =>
      (await h.api('GET', `/v1/webhooks/${e.id}`)).body.circuit === 'closed' ? true : undefined,
    );
  }, 30_000);

  it("keeps each task's order when the circuit closes on the events it held", async () => {
    const e = await endpoint('/held', { events: [...LIFECYCLE, 'webhook.test'] });
    down.add('/held');
    for (let i = 0; i < 3; i++) await h.api('POST', `/v1/webhooks/${e.id}/test`);
    await eventually(async () =>
      (await h.api('GET', `/v1/webhooks/${e.id}`)).body.circuit === 'open' ? true : undefined,
    );
    // Their events all wait for the circuit, then become due together.
    const ids = await createTasks(h.baseUrl, h.apiKey, 5);
    await eventually(
      async () => {
        const tasks = await Promise.all(ids.map(async (id) => (await h.api('GET', `/v1/tasks/${id}`)).body));
        return tasks.every((t) => t.status === 'completed') ? true : undefined;
      },
      { timeoutMs: 15_000 },
    );
    down.delete('/held');
    const taskHooks = () => answeredOk.filter((r) => r.path === '/held' && String(r.body?.type).startsWith('task.'));
    await eventually(async () => (taskHooks().length >= ids.length * LIFECYCLE.length ? true : undefined), {
      timeoutMs: 20_000,
    });
    expectEachOnceInOrder(taskHooks(), ids);
  }, 60_000);

  it('sends nothing of a task past an earlier event of it that waits for its retry', async () => {
    await endpoint('/flaky', { events: LIFECYCLE });
    failNext.set('/flaky', 1);
    const ids = await createTasks(h.baseUrl, h.apiKey, 3);
    const hooks = () => answeredOk.filter((r) => r.path === '/flaky');
    await eventually(async () => (hooks().length >= ids.length * LIFECYCLE.length ? true : undefined), {
      timeoutMs: 20_000,
    });
    expectEachOnceInOrder(hooks(), ids);
  }, 30_000);
});

const LIFECYCLE = ['task.queued', 'task.started', 'task.completed'];

/** The most requests that arrived within one clock second. */
/**
 * The most requests in one clock second, by when Herald sent them: the signed `webhook-timestamp` (whole seconds),
 * taken as a request leaves. What the limit bounds. A receiver that reads late (this test's, in a process shared
 * with the rest of a loaded CI run) can count a few more in one second, and fewer in the next.
 */
function busiestSecond(hooks: ReceivedWebhook[]): number {
  const perSecond = new Map<number, number>();
  for (const r of hooks) {
    const second = Number(r.headers['webhook-timestamp']);
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
  }
  return Math.max(0, ...perSecond.values());
}

/** Requests per second as the receiver read them, from the first to the last (over the limit's first second). */
function receivedRate(hooks: ReceivedWebhook[], limit: number): number {
  const at = hooks.map((r) => r.at).sort((a, b) => a - b);
  return (hooks.length - limit) / ((at[at.length - 1] - at[0]) / 1000);
}

/** Every task's events arrived exactly once each, in the order they happened. */
function expectEachOnceInOrder(hooks: ReceivedWebhook[], taskIds: string[]): void {
  const byTask = new Map<string, string[]>();
  for (const r of hooks) byTask.set(r.body.data.task_id, [...(byTask.get(r.body.data.task_id) ?? []), r.body.type]);
  for (const id of taskIds) expect(byTask.get(id), id).toEqual(LIFECYCLE);
  expect(new Set(hooks.map((r) => r.headers['webhook-id'])).size).toBe(hooks.length);
}

async function createTasks(
  baseUrl: string,
  apiKey: string,
  count: number,
  extra: Record<string, unknown> = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(10, count - i) }, async () => {
        const res = await fetch(`${baseUrl}/v1/images/generations/async`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'm', prompt: 'p', simulate: { duration_ms: 200 }, ...extra }),
        });
        expect(res.status).toBe(202);
        return ((await res.json()) as { task_id: string }).task_id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

describe('rate limits', () => {
  it('refuses a rate_limit_per_second out of range with a 422 naming the field, on create and PATCH', async () => {
    for (const bad of [0, 10_001, 2.5, 'fast']) {
      const res = await h.api('POST', '/v1/webhooks', { url: receiver.url('/rl-bad'), rate_limit_per_second: bad });
      expect(res.status, String(bad)).toBe(422);
      expect(JSON.stringify(res.body.errors)).toContain('rate_limit_per_second');
    }
    const e = await endpoint('/rl-ok', { rate_limit_per_second: 10_000 });
    expect((await h.api('GET', `/v1/webhooks/${e.id}`)).body.rate_limit_per_second).toBe(10_000);
    expect((await h.api('PATCH', `/v1/webhooks/${e.id}`, { rate_limit_per_second: 0 })).status).toBe(422);
    expect(
      (await h.api('PATCH', `/v1/webhooks/${e.id}`, { rate_limit_per_second: null })).body.rate_limit_per_second,
    ).toBeNull();
  });

  it('sends 200 deliveries to an endpoint limited to 20/s at no more than 20 in any clock second, all of them, in per-task order', async () => {
    const e = await endpoint('/rl-20', { rate_limit_per_second: 20, events: LIFECYCLE });
    const tasks = await createTasks(h.baseUrl, h.apiKey, 67);
    await eventually(async () => (at('/rl-20').length >= tasks.length * 3 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    await new Promise((r) => setTimeout(r, 300));
    const hooks = at('/rl-20');
    expect(hooks.length).toBe(tasks.length * 3);
    expect(busiestSecond(hooks)).toBeLessThanOrEqual(20);
    expect(receivedRate(hooks, 20)).toBeLessThanOrEqual(20);
    expectEachOnceInOrder(hooks, tasks);
    // No attempt was spent on waiting: one attempt per delivery.
    const log = (await h.api('GET', `/v1/webhooks/${e.id}/deliveries?limit=100`)).body;
    expect(log.data.every((d: { attempts: number }) => d.attempts === 1)).toBe(true);
    await h.api('DELETE', `/v1/webhooks/${e.id}`);
  }, 90_000);

  it('a new rate_limit_per_second applies to the deliveries not yet sent, losing and repeating none', async () => {
    const e = await endpoint('/rl-change', { rate_limit_per_second: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await h.api('POST', `/v1/webhooks/${e.id}/test`)).body.id);
    await eventually(async () => (at('/rl-change').length >= 2 ? true : undefined));
    expect(at('/rl-change').length).toBeLessThan(ids.length);
    expect((await h.api('PATCH', `/v1/webhooks/${e.id}`, { rate_limit_per_second: null })).status).toBe(200);
    await eventually(async () => (at('/rl-change').length >= ids.length ? true : undefined), { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    const hooks = at('/rl-change');
    expect(new Set(hooks.map((r) => r.headers['webhook-id'])).size).toBe(ids.length);
    expect(hooks.length).toBe(ids.length);
    // Unlimited now: the rest arrived faster than 2 a second.
    expect(busiestSecond(hooks)).toBeGreaterThan(2);
  }, 30_000);

  // Several processes against one database is the PostgreSQL topology.
  it.skipIf(testDb() !== 'postgres')(
    'holds two worker processes together to one endpoint limit of 20/s',
    { timeout: 120_000 },
    async () => {
      const { baseUrl, apiKey } = await twoWorkers({});
      const created = await fetch(`${baseUrl}/v1/webhooks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: receiver.url('/rl-two'), rate_limit_per_second: 20, events: LIFECYCLE }),
      });
      expect(created.status).toBe(201);
      const tasks = await createTasks(baseUrl, apiKey, 67);
      await eventually(async () => (at('/rl-two').length >= tasks.length * 3 ? true : undefined), {
        timeoutMs: 90_000,
        intervalMs: 250,
      });
      await new Promise((r) => setTimeout(r, 300));
      const hooks = at('/rl-two');
      expect(hooks.length).toBe(tasks.length * 3);
      expect(busiestSecond(hooks)).toBeLessThanOrEqual(20);
      expect(receivedRate(hooks, 20)).toBeLessThanOrEqual(20);
      expectEachOnceInOrder(hooks, tasks);
    },
  );

  it.skipIf(testDb() !== 'postgres')(
    'holds two worker processes together to WEBHOOK_HOST_RATE_LIMIT_PER_SECOND across endpoints and webhook_url',
    { timeout: 120_000 },
    async () => {
      const { baseUrl, apiKey } = await twoWorkers({ WEBHOOK_HOST_RATE_LIMIT_PER_SECOND: '30' });
      for (const path of ['/host-a', '/host-b']) {
        const created = await fetch(`${baseUrl}/v1/webhooks`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ url: receiver.url(path), events: LIFECYCLE }),
        });
        expect(created.status).toBe(201);
      }
      // Each task: three events to each endpoint, and its progress and completion to its webhook_url, all to one host.
      const tasks = await createTasks(baseUrl, apiKey, 40, { webhook_url: receiver.url('/host-request') });
      const all = () => receiver.received.filter((r) => r.path.startsWith('/host-'));
      const completed = () => at('/host-request').filter((r) => r.body.status === 'completed');
      await eventually(
        async () =>
          at('/host-a').length + at('/host-b').length >= tasks.length * 6 && completed().length >= tasks.length
            ? true
            : undefined,
        {
          timeoutMs: 90_000,
          intervalMs: 250,
        },
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(busiestSecond(all())).toBeLessThanOrEqual(30);
      expect(receivedRate(all(), 30)).toBeLessThanOrEqual(30);
      // One event has one webhook-id at every target: each target got each once.
      for (const p of ['/host-a', '/host-b', '/host-request'])
        expect(new Set(at(p).map((r) => r.headers['webhook-id'])).size).toBe(at(p).length);
      expectEachOnceInOrder(at('/host-a'), tasks);
      expectEachOnceInOrder(at('/host-b'), tasks);
      expect(
        completed()
          .map((r) => r.body.task_id)
          .sort(),
      ).toEqual([...tasks].sort());
    },
  );
});

/** An API process and two worker processes sharing a fresh PostgreSQL database and Redis prefix. */
async function twoWorkers(extraEnv: Record<string, string>): Promise<{ baseUrl: string; apiKey: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-rl-'));
  const db = await createTestDatabase(dataDir);
  cleanups.push(() => db.drop());
  const apiKey = `hk_rl_${randomBytes(12).toString('hex')}`;
  const env = {
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    QUEUE_PREFIX: `{hr${randomBytes(3).toString('hex')}}`,
    BOOTSTRAP_API_KEY: apiKey,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    SWEEP_INTERVAL_MS: '200',
    GENERATION_CONCURRENCY: '25',
    ...extraEnv,
  };
  const api = await spawnHerald({ ...env, ROLE: 'api' });
  cleanups.push(() => api.kill9());
  for (let i = 0; i < 2; i++) {
    const w = await spawnHerald({ ...env, ROLE: 'worker' });
    cleanups.push(() => w.kill9());
  }
  return { baseUrl: api.baseUrl, apiKey };
}

describe('batch delivery', () => {
  it('refuses a batch out of range with a 422 naming the field', async () => {
    for (const batch of [
      { max_events: 0 },
      { max_events: 101 },
      { max_events: 10, max_wait_ms: 10_001 },
      { max_events: 10, max_wait_ms: -1 },
    ]) {
      const res = await h.api('POST', '/v1/webhooks', { url: receiver.url('/batch-bad'), batch });
      expect(res.status, JSON.stringify(batch)).toBe(422);
      expect(JSON.stringify(res.body.errors)).toMatch(/batch\.max_(events|wait_ms)/);
    }
  });

  it('sends 1,000 events to a max_events: 50 endpoint in at most 25 requests (plus those cut by max_wait_ms), each event once, signed over the whole body', async () => {
    const e = await endpoint('/batch', { batch: { max_events: 50, max_wait_ms: 2_000 } });
    expect((await h.api('GET', `/v1/webhooks/${e.id}`)).body.batch).toEqual({ max_events: 50, max_wait_ms: 2_000 });
    const ids: string[] = [];
    for (let i = 0; i < 1_000; i += 20) {
      ids.push(
        ...(await Promise.all(
          Array.from({ length: 20 }, async () => (await h.api('POST', `/v1/webhooks/${e.id}/test`)).body.id as string),
        )),
      );
    }
    const events = () => at('/batch').flatMap((r) => r.body as Array<{ id: string }>);
    await eventually(async () => (events().length >= ids.length ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    await new Promise((r) => setTimeout(r, 300));
    const requests = at('/batch');
    const full = requests.filter((r) => r.body.length === 50).length;
    expect(requests.every((r) => Array.isArray(r.body) && r.body.length <= 50)).toBe(true);
    // Every request short of 50 events was cut by max_wait_ms; the full ones are at most 1,000 / 50.
    expect(full).toBeLessThanOrEqual(20);
    expect(requests.length).toBeLessThanOrEqual(25 + (requests.length - full));
    expect(full).toBeGreaterThanOrEqual(10);
    const seen = events().map((env) => env.id);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(ids.length);
    const wh = new Webhook(e.secret);
    for (const r of requests) {
      const verified = wh.verify(r.raw, r.headers as Record<string, string>) as Array<{ id: string; type: string }>;
      expect(verified.every((env) => env.type === 'webhook.test')).toBe(true);
    }
    // webhook-id names the batch, and the delivery log shows which events it carried.
    const first = requests[0];
    const shown = (await h.api('GET', `/v1/deliveries/${first.headers['webhook-id']}`)).body;
    expect(shown.batch.id).toBe(first.headers['webhook-id']);
    expect(shown.batch.events.map((x: { event_id: string }) => x.event_id)).toEqual(
      first.body.map((env: { id: string }) => env.id),
    );
    // One attempt per batch request, shown on every event it carried.
    expect(shown.attempt_log).toHaveLength(
      requests.filter((r) => r.headers['webhook-id'] === first.headers['webhook-id']).length,
    );
    const member = (
      await h.api('GET', `/v1/deliveries/${shown.batch.events[shown.batch.events.length - 1].delivery_id}`)
    ).body;
    expect(member.batch.id).toBe(shown.batch.id);
    expect(member.attempt_log).toEqual(shown.attempt_log);
  }, 90_000);

  it('a batch set or removed on a live endpoint applies to the deliveries not yet sent, losing and repeating none', async () => {
    const e = await endpoint('/batch-live', { rate_limit_per_second: 5 });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await h.api('POST', `/v1/webhooks/${e.id}/test`)).body.id);
    await eventually(async () => (at('/batch-live').length >= 1 ? true : undefined));
    expect(
      (await h.api('PATCH', `/v1/webhooks/${e.id}`, { batch: { max_events: 10, max_wait_ms: 0 } })).body.batch,
    ).toEqual({ max_events: 10, max_wait_ms: 0 });
    const events = () =>
      at('/batch-live').flatMap((r) => (Array.isArray(r.body) ? r.body : [r.body]) as Array<{ id: string }>);
    await eventually(async () => (events().length >= ids.length ? true : undefined), { timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(at('/batch-live').some((r) => Array.isArray(r.body) && r.body.length > 1)).toBe(true);
    const seen = events().map((x) => x.id);
    expect(seen.length).toBe(ids.length);
    expect(new Set(seen).size).toBe(ids.length);
    expect((await h.api('PATCH', `/v1/webhooks/${e.id}`, { batch: null })).body.batch).toBeNull();
  }, 30_000);

  it('keeps per-task order across batches, retries a failed batch whole, and redelivers one event alone', async () => {
    const e = await endpoint('/batch-order', { batch: { max_events: 5, max_wait_ms: 100 }, events: LIFECYCLE });
    down.add('/batch-order');
    const tasks = await createTasks(h.baseUrl, h.apiKey, 6);
    await eventually(async () => (at('/batch-order').length >= 2 ? true : undefined));
    down.delete('/batch-order');
    await eventually(
      async () => {
        const ok = at('/batch-order').filter((r, i, all) => i >= 0 && all.length > 0);
        const delivered = new Set(ok.flatMap((r) => (r.body as Array<{ id: string }>).map((x) => x.id)));
        return delivered.size >= tasks.length * 3 ? true : undefined;
      },
      { timeoutMs: 20_000 },
    );
    await new Promise((r) => setTimeout(r, 300));
    // A failed request came again with the same webhook-id and the same events.
    const byId = new Map<string, string[]>();
    for (const r of at('/batch-order')) {
      const carried = (r.body as Array<{ id: string }>).map((x) => x.id).join(',');
      const seen = byId.get(String(r.headers['webhook-id']));
      if (seen) expect(seen).toContain(carried);
      byId.set(String(r.headers['webhook-id']), [...(seen ?? []), carried]);
    }
    expect([...byId.values()].some((v) => v.length > 1)).toBe(true);
    // Per task, the events of the last (successful) sending of each batch arrive in order.
    const lastOfEach = new Map<string, ReceivedWebhook>();
    for (const r of at('/batch-order')) lastOfEach.set(String(r.headers['webhook-id']), r);
    const flat = [...lastOfEach.values()]
      .sort((a, b) => a.at - b.at)
      .flatMap((r) =>
        (r.body as Array<{ type: string; data: { task_id: string } }>).map(
          (env) =>
            ({ body: env, headers: { 'webhook-id': env.type + env.data.task_id } }) as unknown as ReceivedWebhook,
        ),
      );
    expectEachOnceInOrder(flat, tasks);

    const one = (await h.api('GET', `/v1/webhooks/${e.id}/deliveries?limit=1`)).body.data[0];
    const again = await h.api('POST', `/v1/deliveries/${one.id}/redeliver`);
    expect(again.status).toBe(202);
    const alone = await eventually(async () =>
      at('/batch-order').find((r) => r.headers['webhook-id'] === one.event_id),
    );
    expect(alone.body.id).toBe(one.event_id);
  }, 60_000);

  it('cuts a batch whose body would pass WEBHOOK_BATCH_MAX_BYTES, losing and repeating no event', async () => {
    const capped = await startTestHerald({ WEBHOOK_BATCH_MAX_BYTES: '2048' });
    cleanups.push(() => capped.stop());
    const created = await capped.api('POST', '/v1/webhooks', {
      url: receiver.url('/batch-cap'),
      batch: { max_events: 100, max_wait_ms: 300 },
    });
    const ids: string[] = [];
    for (let i = 0; i < 60; i += 20) {
      ids.push(
        ...(await Promise.all(
          Array.from(
            { length: 20 },
            async () => (await capped.api('POST', `/v1/webhooks/${created.body.id}/test`)).body.id as string,
          ),
        )),
      );
    }
    const events = () => at('/batch-cap').flatMap((r) => r.body as Array<{ id: string }>);
    await eventually(async () => (events().length >= ids.length ? true : undefined), { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300));
    const requests = at('/batch-cap');
    for (const r of requests) expect(Buffer.byteLength(r.raw)).toBeLessThanOrEqual(2048);
    // 60 envelopes of ~200 bytes do not fit in one 2 KB body: cut into several, each holding several.
    expect(requests.length).toBeGreaterThan(3);
    expect(requests.some((r) => r.body.length > 1)).toBe(true);
    expect(events().length).toBe(ids.length);
    expect(new Set(events().map((e) => e.id)).size).toBe(ids.length);
  }, 40_000);

  it('gives back every event of a claimed batch still waiting for the wire on shutdown (not only its carrier)', async () => {
    // One request on the wire at a time, and a slow receiver: one endpoint's batch is out, the other's waits.
    const first = await startTestHerald({ WEBHOOK_CONCURRENCY: '1', WEBHOOK_TIMEOUT_MS: '30000' });
    let stopped = false;
    cleanups.push(() => (stopped ? Promise.resolve() : first.stop()));
    const slow = new Set(['/shut-a', '/shut-b']);
    const endpoints = [];
    for (const p of slow)
      endpoints.push(
        (await first.api('POST', '/v1/webhooks', { url: receiver.url(p), batch: { max_events: 5, max_wait_ms: 0 } }))
          .body,
      );
    for (const p of slow) slowPaths.add(p);
    const ids: string[] = [];
    for (const e of endpoints)
      for (let i = 0; i < 5; i++) ids.push((await first.api('POST', `/v1/webhooks/${e.id}/test`)).body.id);
    const out = () => receiver.received.filter((r) => slow.has(r.path));
    await eventually(async () => (out().length >= 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    await first.herald.close();
    stopped = true;
    const sentBefore = out().length;
    expect(sentBefore).toBe(1);
    slowPaths.clear();

    const second = await startTestHerald({}, { keepData: first });
    cleanups.push(() => second.stop());
    // Far sooner than the sweeper would hand back a claim left `sending` (the 30 s timeout plus its margin).
    await eventually(async () => (out().flatMap((r) => r.body as unknown[]).length >= ids.length ? true : undefined), {
      timeoutMs: 10_000,
    });
    await new Promise((r) => setTimeout(r, 300));
    const seen = out().flatMap((r) => (r.body as Array<{ id: string }>).map((x) => x.id));
    expect(seen.length).toBe(ids.length);
    expect(new Set(seen).size).toBe(ids.length);
    // The batch given back was not counted as an attempt.
    for (const id of ids) expect((await second.api('GET', `/v1/deliveries/${id}`)).body.attempts).toBe(1);
  }, 60_000);
});
