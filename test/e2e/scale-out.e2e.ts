import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, eventually, testDb } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { startReceiver } from '../support/receiver.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

// Several processes against one database is the PostgreSQL topology; SQLite is single-node by design.
describe.skipIf(testDb() !== 'postgres')('scale-out on PostgreSQL + Redis', () => {
  it(
    '1 api + 2 workers run 500 tasks; killing a worker mid-run loses nothing and finishes nothing twice',
    { timeout: 180_000 },
    async () => {
      const receiver = await startReceiver();
      cleanups.push(() => receiver.close());
      const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-scale-'));
      const db = await createTestDatabase(dataDir);
      cleanups.push(() => db.drop());
      const apiKey = `hk_scale_${randomBytes(12).toString('hex')}`;
      const env = {
        DATA_DIR: dataDir,
        DATABASE_URL: db.url,
        QUEUE_PREFIX: `{hs${randomBytes(3).toString('hex')}}`,
        BOOTSTRAP_API_KEY: apiKey,
        // Shared by every process, as SCALING.md says: webhook header values are sealed with it.
        ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
        SWEEP_INTERVAL_MS: '200',
        WEBHOOK_TIMEOUT_MS: '1000',
        GENERATION_CONCURRENCY: '25',
        WEBHOOK_CONCURRENCY: '32',
      };
      const api = await spawnHerald({ ...env, ROLE: 'api' });
      cleanups.push(() => api.kill9());
      const workers = [await spawnHerald({ ...env, ROLE: 'worker' }), await spawnHerald({ ...env, ROLE: 'worker' })];
      for (const w of workers) cleanups.push(() => w.kill9());

      const TASKS = 500;
      const ids: string[] = [];
      const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
      for (let i = 0; i < TASKS; i += 25) {
        const batch = await Promise.all(
          Array.from({ length: 25 }, (_, j) =>
            fetch(`${api.baseUrl}/v1/${(i + j) % 2 ? 'images' : 'videos'}/generations/async`, {
              method: 'POST',
              headers,
              body: JSON.stringify({
                model: 'm',
                prompt: `t${i + j}`,
                webhook_url: receiver.url(),
                webhook_events: ['completed'],
                simulate: { duration_ms: 300 + ((i + j) % 7) * 100 },
              }),
            }).then(async (r) => {
              expect(r.status).toBe(202);
              return ((await r.json()) as { task_id: string }).task_id;
            }),
          ),
        );
        ids.push(...batch);
      }
      const done = () => new Set(receiver.received.map((w) => w.body.task_id)).size;
      await eventually(async () => (done() >= 50 ? true : undefined), { timeoutMs: 60_000 });
      await workers[0].kill9();
      expect(done()).toBeLessThan(TASKS);

      await eventually(async () => (done() === TASKS ? true : undefined), { timeoutMs: 120_000, intervalMs: 250 });
      // No double terminal state: each task has exactly one terminal event, and it says completed.
      for (const id of ids) {
        const events = (
          (await (await fetch(`${api.baseUrl}/v1/tasks/${id}/events`, { headers })).json()) as {
            data: Array<{ type: string }>;
          }
        ).data;
        const terminal = events.filter((e) => ['task.completed', 'task.failed', 'task.cancelled'].includes(e.type));
        expect(
          terminal.map((e) => e.type),
          id,
        ).toEqual(['task.completed']);
      }
      // Repeats (at-least-once) carry the same webhook-id as the first delivery of that event.
      const idsByTask = new Map<string, Set<string>>();
      for (const w of receiver.received)
        idsByTask.set(
          w.body.task_id,
          (idsByTask.get(w.body.task_id) ?? new Set()).add(String(w.headers['webhook-id'])),
        );
      for (const set of idsByTask.values()) expect(set.size).toBe(1);
    },
  );
});
