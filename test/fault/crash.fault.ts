import { afterAll, describe, expect, it } from 'vitest';
import { faultEnvironment, statusCounts } from '../support/fault-env.js';
import { eventually } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { recordFigures } from '../support/reliability.js';

let env: Awaited<ReturnType<typeof faultEnvironment>>;
afterAll(async () => env?.cleanup());

describe('crashes and Redis loss', () => {
  it('1,000 tasks: API and worker apart, the worker killed -9 twice and Redis flushed once; every terminal webhook arrives', async () => {
    env = await faultEnvironment({ env: { GENERATION_CONCURRENCY: '50', WEBHOOK_CONCURRENCY: '64' } });
    const t0 = Date.now();
    const api = await spawnHerald({ ...env.env, ROLE: 'api' });
    env.onCleanup(() => api.kill9());
    const startWorker = async () => {
      const w = await spawnHerald({ ...env.env, ROLE: 'worker' });
      env.onCleanup(() => w.kill9());
      return w;
    };
    let worker = await startWorker();
    const TASKS = 1_000;
    const ids = await env
      .submit(api.baseUrl, TASKS, (i) => ({ simulate: { duration_ms: 200 + (i % 10) * 50 } }))
      .catch((err) => {
        throw new Error(`${err.message}\n${api.output().slice(-3000)}`);
      });
    const reach = (n: number) =>
      eventually(async () => (env.finished().size >= n ? true : undefined), { timeoutMs: 120_000, intervalMs: 100 });

    await reach(100);
    await worker.kill9(); // fault 1
    worker = await startWorker(); // another worker takes over
    await reach(400);
    await env.redis.flushAll(); // fault 2
    await reach(600);
    await worker.kill9(); // fault 3
    worker = await startWorker();

    await eventually(async () => (ids.every((id) => env.finished().has(id)) ? true : undefined), {
      timeoutMs: 180_000,
      intervalMs: 250,
    });
    const counts = await statusCounts(api.baseUrl, env.headers);
    expect(counts).toEqual({ completed: TASKS });
    const dup = env.duplicates();
    expect(dup.sameId).toBe(true);
    recordFigures('crash: 1,000 tasks, worker kill -9 ×2, Redis FLUSHALL ×1 (API and worker as separate processes)', {
      tasks: TASKS,
      faults: 3,
      terminal_webhooks_received: env.finished().size,
      lost: TASKS - env.finished().size,
      stuck: TASKS - (counts.completed ?? 0),
      repeated_deliveries: dup.repeats,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  });
});
