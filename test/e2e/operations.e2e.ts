import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetentionService } from '../../src/operations/retention.service.js';
import { Task } from '../../src/tasks/task.entity.js';
import { createTestDatabase, eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { startReceiver } from '../support/receiver.js';

let h: TestHerald;
beforeAll(async () => {
  h = await startTestHerald({ RETENTION_DAYS: '1' });
});
afterAll(async () => {
  await h?.stop();
});

describe('OpenAPI', () => {
  it('describes every route and the seeds’ payloads at /docs-json, with a UI at /docs', async () => {
    const doc = (await (await fetch(`${h.baseUrl}/docs-json`)).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, { example?: unknown }> };
    };
    expect(doc.openapi).toMatch(/^3\./);
    for (const route of [
      '/v1/videos/generations/async',
      '/v1/videos/generations/tasks/{id}',
      '/v1/images/generations/{id}/status',
      '/v1/tasks',
      '/v1/tasks/{id}/events/stream',
      '/v1/deliveries/{id}/redeliver',
      '/v1/webhooks/{id}/rotate-secret',
      '/v1/event-types',
      '/health/ready',
      '/metrics',
    ]) {
      expect(doc.paths, route).toHaveProperty([route]);
    }
    expect(doc.components.schemas.CreateGenerationDto).toBeDefined();
    for (const kind of ['videos', 'images']) {
      const create = (
        doc.paths[`/v1/${kind}/generations/async`] as {
          post: {
            requestBody: { content: Record<string, { examples?: Record<string, unknown> }> };
            responses: Record<string, unknown>;
          };
        }
      ).post;
      expect(Object.keys(create.responses), kind).toEqual(expect.arrayContaining(['200', '202', '422']));
      expect(create.requestBody.content['application/json'].examples, kind).toHaveProperty(['conduit']);
    }
    expect(doc.components.schemas.ConduitCompletedWebhook.example).toMatchObject({
      webhook_type: 'video_generation_completed',
    });
    const ui = await fetch(`${h.baseUrl}/docs`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
  });
});

describe('metrics', () => {
  it('exposes task, delivery, queue and outbox metrics in Prometheus format', async () => {
    const receiver = await startReceiver();
    try {
      const created = await h.api('POST', '/v1/images/generations/async', {
        model: 'm',
        prompt: 'p',
        simulate: { duration_ms: 50 },
        webhook_url: receiver.url(),
        webhook_events: ['completed'],
      });
      await eventually(async () => (receiver.forTask(created.body.task_id).length ? true : undefined));
      const text = await eventually(async () => {
        const body = await (await fetch(`${h.baseUrl}/metrics`)).text();
        return body.includes('herald_webhook_deliveries_total{outcome="succeeded"}') ? body : undefined;
      });
      expect(text).toMatch(/herald_tasks_created_total\{kind="image"\} [1-9]/);
      expect(text).toMatch(/herald_tasks_finished_total\{kind="image",status="completed"\} [1-9]/);
      expect(text).toMatch(/herald_webhook_attempts_total\{outcome="succeeded"\} [1-9]/);
      expect(text).toContain('herald_webhook_delivery_latency_seconds_bucket');
      expect(text).toMatch(/herald_queue_jobs\{queue="webhooks",state="waiting"\} \d+/);
      expect(text).toMatch(/herald_outbox_lag_seconds \d/);
      expect(text).toContain('herald_process_cpu_seconds_total');
    } finally {
      await receiver.close();
    }
  });
});

describe('retention', () => {
  it('purges terminal tasks older than RETENTION_DAYS with their events, deliveries and files, and keeps the rest', async () => {
    const receiver = await startReceiver();
    try {
      const old = await h.api(
        'POST',
        '/v1/images/generations/async',
        { model: 'm', prompt: 'old', simulate: { duration_ms: 0 }, webhook_url: receiver.url() },
        { prefer: 'wait=10' },
      );
      const recent = await h.api(
        'POST',
        '/v1/images/generations/async',
        { model: 'm', prompt: 'new', simulate: { duration_ms: 0 } },
        { prefer: 'wait=10' },
      );
      const running = await h.api('POST', '/v1/images/generations/async', {
        model: 'm',
        prompt: 'running',
        simulate: { duration_ms: 60_000 },
      });
      const completed = await eventually(async () =>
        receiver.forTask(old.body.task_id).find((w) => w.body.status === 'completed'),
      );
      const artifact = completed.body.image_url as string;
      expect((await fetch(artifact)).status).toBe(200);
      const now = new Date(Date.now() + 12 * 3_600_000);
      // With RETENTION_DAYS=1, `now` keeps what finished in the last 12 real hours; "old" finished 3 days ago.
      await h.herald.app
        .get(RetentionService)
        ['uow'].run((em: import('typeorm').EntityManager) =>
          em.update(Task, { id: old.body.task_id }, { completedAt: new Date(now.getTime() - 3 * 86_400_000) }),
        );
      const report = await h.herald.app.get(RetentionService).purge(now);
      expect(report.tasks).toBe(1);
      expect(report.deliveries).toBeGreaterThan(0);
      expect((await h.api('GET', `/v1/tasks/${old.body.task_id}`)).status).toBe(404);
      expect((await fetch(artifact)).status).toBe(404);
      expect((await h.api('GET', `/v1/tasks/${recent.body.task_id}`)).status).toBe(200);
      expect((await h.api('GET', `/v1/tasks/${running.body.task_id}`)).status).toBe(200);
      await h.api('DELETE', `/v1/images/generations/${running.body.task_id}`);
    } finally {
      await receiver.close();
    }
  });
});

describe('structured logs', () => {
  it(
    'writes JSON lines with request ids and never the API key, webhook header values or secrets',
    { timeout: 60_000 },
    async () => {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-logs-'));
      const db = await createTestDatabase(dataDir);
      const apiKey = `hk_logs_${randomBytes(12).toString('hex')}`;
      const receiver = await startReceiver();
      const herald = await spawnHerald({
        DATA_DIR: dataDir,
        DATABASE_URL: db.url,
        QUEUE_PREFIX: `hl${randomBytes(4).toString('hex')}`,
        BOOTSTRAP_API_KEY: apiKey,
        LOG_LEVEL: 'debug',
        WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
        SIMULATOR_DURATION_MS: '100',
      });
      try {
        const headers = {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          'x-request-id': 'req-logs-1',
        };
        const created = await fetch(`${herald.baseUrl}/v1/videos/generations/async`, {
          method: 'POST',
          headers,
          body: JSON.stringify({
            model: 'm',
            prompt: 'p',
            webhook_url: receiver.url(),
            webhook_headers: { Authorization: 'Bearer header-value-never-logged' },
          }),
        });
        expect(created.headers.get('x-request-id')).toBe('req-logs-1');
        const id = ((await created.json()) as { task_id: string }).task_id;
        await eventually(async () =>
          receiver.forTask(id).some((w) => w.body.status === 'completed') ? true : undefined,
        );
        const secret = (
          (await (await fetch(`${herald.baseUrl}/v1/webhooks/secret`, { headers })).json()) as { secret: string }
        ).secret;
        await new Promise((r) => setTimeout(r, 200));
        const lines = herald.output().trim().split('\n');
        const parsed = lines.map((l) => JSON.parse(l) as { req?: { id?: string } });
        expect(parsed.some((l) => l.req?.id === 'req-logs-1')).toBe(true);
        const all = herald.output();
        expect(all).not.toContain(apiKey);
        expect(all).not.toContain('header-value-never-logged');
        expect(all).not.toContain(secret.slice(6));
      } finally {
        await herald.terminate();
        await receiver.close();
        await db.drop();
      }
    },
  );
});
