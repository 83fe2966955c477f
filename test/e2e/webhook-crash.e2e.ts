import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getQueueToken } from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import { DeliveryPlanner } from '../../src/webhooks/delivery-planner.js';
import { Delivery, DeliveryAttempt, REQUEST_TARGET } from '../../src/webhooks/delivery.entity.js';
import { Outbox } from '../../src/webhooks/outbox.js';
import { WEBHOOK_QUEUE } from '../../src/webhooks/webhook.queue.js';
import { createTestDatabase, eventually, startTestHerald, type TestDatabase } from '../support/herald.js';
import { spawnHerald, startPrivateRedis } from '../support/processes.js';
import { startReceiver } from '../support/receiver.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** A private Redis, database and data dir for Herald processes a test kills -9 (spawnHerald), with their env. */
async function killableSetup(extra: Record<string, string> = {}) {
  const redis = await startPrivateRedis();
  cleanups.push(() => redis.stop());
  const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-crash-'));
  const db: TestDatabase = await createTestDatabase(dataDir);
  cleanups.push(() => db.drop());
  const apiKey = `hk_crash_${randomBytes(12).toString('hex')}`;
  const env = {
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    BOOTSTRAP_API_KEY: apiKey,
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    SWEEP_INTERVAL_MS: '200',
    WEBHOOK_TIMEOUT_MS: '1000',
    ...extra,
  };
  return { env, apiKey, redis };
}

describe('crash safety', () => {
  it(
    'delivers every terminal webhook after the worker is killed -9 mid-run and Redis is flushed',
    { timeout: 120_000 },
    async () => {
      const AUTH = 'Bearer crash-test';
      const receiver = await startReceiver({ authorization: AUTH });
      cleanups.push(() => receiver.close());
      const { env, apiKey, redis } = await killableSetup({
        SIMULATOR_DURATION_MS: '1500',
        WEBHOOK_RETRY_SCHEDULE: '0s,100ms,200ms,500ms,1s,2s',
      });

      const first = await spawnHerald(env);
      cleanups.push(() => first.kill9());
      const TASKS = 40;
      const ids: string[] = [];
      for (let i = 0; i < TASKS; i++) {
        const res = await fetch(`${first.baseUrl}/v1/${i % 2 ? 'images' : 'videos'}/generations/async`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'm',
            prompt: `task ${i}`,
            webhook_url: receiver.url(),
            webhook_headers: { Authorization: AUTH },
            simulate: { duration_ms: 600 + (i % 5) * 300 },
          }),
        });
        expect(res.status).toBe(202);
        ids.push(((await res.json()) as { task_id: string }).task_id);
      }
      const terminalFor = (id: string) =>
        receiver.forTask(id).filter((w) => w.body.webhook_type.endsWith('_completed'));
      // Mid-run: some tasks are done, most are not.
      await eventually(async () => (ids.filter((id) => terminalFor(id).length > 0).length >= 3 ? true : undefined), {
        timeoutMs: 20_000,
      });
      await first.kill9();
      await redis.flushAll();
      const doneBeforeCrash = ids.filter((id) => terminalFor(id).length > 0).length;
      expect(doneBeforeCrash).toBeLessThan(TASKS);

      const second = await spawnHerald(env);
      cleanups.push(() => second.kill9());
      await eventually(async () => (ids.every((id) => terminalFor(id).length > 0) ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 200,
      });

      // At-least-once: a webhook sent twice carries the same webhook-id both times.
      const byEvent = new Map<string, Set<string>>();
      for (const w of receiver.received) {
        const set = byEvent.get(w.body.event_id) ?? new Set<string>();
        set.add(String(w.headers['webhook-id']));
        byEvent.set(w.body.event_id, set);
      }
      for (const ids_ of byEvent.values()) expect(ids_.size).toBe(1);
      // No task is left unfinished, and each finished as its webhook said.
      for (const id of ids) {
        const task = (await (
          await fetch(`${second.baseUrl}/v1/tasks/${id}`, { headers: { authorization: `Bearer ${apiKey}` } })
        ).json()) as { status: string };
        expect(task.status).toBe('completed');
        expect(terminalFor(id)[0].body.status).toBe('completed');
      }
    },
  );
});

describe('claims waiting for the wire', () => {
  it(
    'does not send a delivery the sweeper handed back while it waited for a place on the wire',
    { timeout: 30_000 },
    async () => {
      // One place on the wire, held 2.5 s by the first webhook: the second one's claim waits behind it.
      const receiver = await startReceiver({ respond: (_req, n) => ({ status: 200, delayMs: n === 1 ? 2_500 : 0 }) });
      cleanups.push(() => receiver.close());
      const h = await startTestHerald({ WEBHOOK_CONCURRENCY: '1', WEBHOOK_TIMEOUT_MS: '10000' });
      cleanups.push(() => h.stop());
      const submit = async () =>
        (
          await h.api('POST', '/v1/images/generations/async', {
            model: 'm',
            prompt: 'p',
            webhook_url: receiver.url(),
            webhook_events: ['completed'],
            simulate: { duration_ms: 0 },
          })
        ).body.task_id as string;
      const first = await submit();
      await eventually(async () => (receiver.forTask(first).length ? true : undefined));
      const second = await submit();
      const db = h.herald.app.get(DataSource);
      await eventually(async () =>
        (await db.getRepository(Delivery).findOneBy({ taskId: second }))?.status === 'sending' ? true : undefined,
      );
      // What the sweeper does to a claim older than its margin (a worker that died, or one stuck behind slow receivers).
      await db
        .getRepository(Delivery)
        .update({ taskId: second, status: 'sending' }, { status: 'pending', dispatchedAt: null });

      // Handed back, it is delivered again by whoever claims it next; the waiting claim does not send it as well.
      await eventually(
        async () =>
          (await db.getRepository(Delivery).findOneBy({ taskId: second }))?.status === 'succeeded' ? true : undefined,
        { timeoutMs: 15_000 },
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(receiver.forTask(second)).toHaveLength(1);
      expect(receiver.forTask(first)).toHaveLength(1);
      const delivery = await db.getRepository(Delivery).findOneByOrFail({ taskId: second });
      expect(await db.getRepository(DeliveryAttempt).countBy({ deliveryId: delivery.id })).toBe(1);
    },
  );
});

describe('shutdown with claims waiting for the wire', () => {
  it(
    'gives waiting claims back instead of sending them, so shutdown waits only for the requests already out',
    { timeout: 30_000 },
    async () => {
      const receiver = await startReceiver({ respond: (_req, n) => ({ status: 200, delayMs: n === 1 ? 1_500 : 0 }) });
      cleanups.push(() => receiver.close());
      const env = { WEBHOOK_CONCURRENCY: '1', WEBHOOK_TIMEOUT_MS: '10000' };
      const h = await startTestHerald(env);
      const submit = async () =>
        (
          await h.api('POST', '/v1/images/generations/async', {
            model: 'm',
            prompt: 'p',
            webhook_url: receiver.url(),
            webhook_events: ['completed'],
            simulate: { duration_ms: 0 },
          })
        ).body.task_id as string;
      const first = await submit();
      await eventually(async () => (receiver.forTask(first).length ? true : undefined));
      const waiting = [await submit(), await submit()];
      const deliveries = h.herald.app.get(DataSource).getRepository(Delivery);
      await eventually(async () => ((await deliveries.countBy({ status: 'sending' })) === 3 ? true : undefined));

      const started = Date.now();
      await h.herald.close();
      // The request on the wire was answered and recorded; the two behind it were neither sent nor left `sending`.
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(receiver.received).toHaveLength(1);

      const again = await startTestHerald(env, { keepData: h });
      cleanups.push(() => again.stop());
      const rows = again.herald.app.get(DataSource).getRepository(Delivery);
      expect((await rows.findOneByOrFail({ taskId: first })).status).toBe('succeeded');
      // Restarted, it sends them, each once, with its first attempt counted as the first.
      await eventually(async () => (waiting.every((id) => receiver.forTask(id).length === 1) ? true : undefined), {
        timeoutMs: 15_000,
      });
      await eventually(async () => ((await rows.countBy({ status: 'succeeded' })) === 3 ? true : undefined));
      for (const id of waiting)
        expect(await rows.findOneByOrFail({ taskId: id })).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(receiver.received).toHaveLength(3);
    },
  );
});

describe('webhooks sent by the process that finished the task', () => {
  it(
    'sends the first attempt without the queue, and leaves its retries to the queue',
    { timeout: 30_000 },
    async () => {
      const receiver = await startReceiver({ respond: (_req, n) => ({ status: n === 1 ? 503 : 200 }) });
      cleanups.push(() => receiver.close());
      const h = await startTestHerald({ WEBHOOK_RETRY_SCHEDULE: '0s,300ms' });
      cleanups.push(() => h.stop());
      // With the webhook queue paused, only what bypasses it can reach the receiver.
      const queue = h.herald.app.get<Queue>(getQueueToken(WEBHOOK_QUEUE));
      await queue.pause();
      const { body } = await h.api('POST', '/v1/images/generations/async', {
        model: 'm',
        prompt: 'p',
        webhook_url: receiver.url(),
        webhook_events: ['completed'],
        simulate: { duration_ms: 0 },
      });
      const taskId = body.task_id as string;
      await eventually(async () => (receiver.forTask(taskId).length === 1 ? true : undefined));
      const deliveries = h.herald.app.get(DataSource).getRepository(Delivery);
      await eventually(async () => ((await deliveries.findOneBy({ taskId }))?.status === 'pending' ? true : undefined));
      // The retry waits in the queue: nothing more arrives while it is paused, well past the 300 ms backoff.
      await new Promise((r) => setTimeout(r, 800));
      expect(receiver.forTask(taskId)).toHaveLength(1);

      await queue.resume();
      await eventually(async () =>
        (await deliveries.findOneBy({ taskId }))?.status === 'succeeded' ? true : undefined,
      );
      const [first, second] = receiver.forTask(taskId);
      expect(second.headers['webhook-id']).toBe(first.headers['webhook-id']);
      expect(await deliveries.findOneByOrFail({ taskId })).toMatchObject({ status: 'succeeded', attempts: 2 });
    },
  );

  it("keeps a task's webhooks in order when they are sent at once", { timeout: 30_000 }, async () => {
    // Each webhook holds the receiver a little, so a later event of the task is ready while an earlier one is out.
    const receiver = await startReceiver({ respond: () => ({ status: 200, delayMs: 30 }) });
    cleanups.push(() => receiver.close());
    const h = await startTestHerald({ SIMULATOR_DURATION_MS: '100' });
    cleanups.push(() => h.stop());
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(
        (
          await h.api('POST', '/v1/videos/generations/async', {
            model: 'm',
            prompt: 'p',
            webhook_url: receiver.url(),
            simulate: { duration_ms: 60 },
          })
        ).body.task_id,
      );
    await eventually(async () =>
      ids.every((id) => receiver.forTask(id).some((w) => w.body.webhook_type.endsWith('_completed')))
        ? true
        : undefined,
    );
    for (const id of ids) {
      const sequences = receiver.forTask(id).map((w) => w.body.sequence as number);
      // In order, and each event once: nothing here fails or dies, so nothing is sent twice.
      expect(sequences).toEqual([...new Set(sequences)].sort((a, b) => a - b));
      expect(receiver.forTask(id).at(-1)!.body.status).toBe('completed');
    }
  });

  it(
    'sends again, with the same webhook-id, a webhook whose process died while it was on the wire',
    { timeout: 60_000 },
    async () => {
      const receiver = await startReceiver({ respond: (_req, n) => ({ status: 200, delayMs: n === 1 ? 10_000 : 0 }) });
      cleanups.push(() => receiver.close());
      const { env, apiKey } = await killableSetup();
      const first = await spawnHerald(env);
      cleanups.push(() => first.kill9());
      const res = await fetch(`${first.baseUrl}/v1/images/generations/async`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'm',
          prompt: 'p',
          webhook_url: receiver.url(),
          webhook_events: ['completed'],
          simulate: { duration_ms: 0 },
        }),
      });
      const taskId = ((await res.json()) as { task_id: string }).task_id;
      await eventually(async () => (receiver.forTask(taskId).length === 1 ? true : undefined));
      await first.kill9();

      const second = await spawnHerald(env);
      cleanups.push(() => second.kill9());
      // Left `sending` by the dead process; the sweeper hands it back after the timeout and its margin.
      await eventually(async () => (receiver.forTask(taskId).length === 2 ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 200,
      });
      const [a, b] = receiver.forTask(taskId);
      expect(b.headers['webhook-id']).toBe(a.headers['webhook-id']);
      expect(b.body.status).toBe('completed');
    },
  );
});

describe('a backlog in the outbox', () => {
  it(
    'is drained by the worker in the same process, past the deliveries it holds, with the queue paused',
    { timeout: 60_000 },
    async () => {
      const receiver = await startReceiver();
      cleanups.push(() => receiver.close());
      const h = await startTestHerald({ WEBHOOK_CONCURRENCY: '4' });
      cleanups.push(() => h.stop());
      await h.herald.app.get<Queue>(getQueueToken(WEBHOOK_QUEUE)).pause();
      const db = h.herald.app.get(DataSource);
      const [{ id: tenantId }] = await db.query<Array<{ id: string }>>('SELECT id FROM tenants');
      // Three times what the worker holds (128), written undispatched, as a redelivery or a recovery writes them.
      const BACKLOG = 384;
      const planner = h.herald.app.get(DeliveryPlanner);
      await db.transaction((em) =>
        planner.insertMany(
          em,
          Array.from({ length: BACKLOG }, (_, i) => {
            const eventId = randomUUID();
            return {
              tenantId,
              taskId: null,
              eventId,
              eventType: 'webhook.test' as const,
              sequence: 0,
              target: REQUEST_TARGET,
              url: receiver.url(),
              headersSealed: null,
              payload: JSON.stringify({ n: i }),
              schedule: [0],
            };
          }),
        ),
      );
      h.herald.app.get(Outbox).kick();
      await eventually(async () => (receiver.received.length >= BACKLOG ? true : undefined), { timeoutMs: 30_000 });
      await eventually(async () =>
        (await db.getRepository(Delivery).countBy({ status: 'succeeded' })) === BACKLOG ? true : undefined,
      );
      expect(receiver.received).toHaveLength(BACKLOG);
      expect(new Set(receiver.received.map((w) => w.headers['webhook-id'])).size).toBe(BACKLOG);
    },
  );
});
