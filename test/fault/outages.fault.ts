import { afterEach, describe, expect, it } from 'vitest';
import { faultEnvironment, statusCounts } from '../support/fault-env.js';
import { eventually } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { recordFigures } from '../support/reliability.js';

let env: Awaited<ReturnType<typeof faultEnvironment>> | undefined;
afterEach(async () => {
  await env?.cleanup();
  env = undefined;
});

describe('outages', () => {
  it('Redis stopped for 10 s: reads keep answering, creates are accepted and queued, every delivery completes after', async () => {
    env = await faultEnvironment();
    const herald = await spawnHerald(env.env);
    env.onCleanup(() => herald.kill9());
    const t0 = Date.now();
    const before = await env.submit(herald.baseUrl, 50, () => ({ simulate: { duration_ms: 3_000 } }));
    await new Promise((r) => setTimeout(r, 500));

    await env.redis.stop();
    const down = Date.now();
    const read = await fetch(`${herald.baseUrl}/v1/tasks?limit=5`, { headers: env.headers });
    expect(read.status).toBe(200);
    const ready = await fetch(`${herald.baseUrl}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('content-type')).toContain('application/problem+json');
    // Decided and documented: a create during the outage is stored and answered 202; it runs once Redis is back.
    const during = await env.submit(herald.baseUrl, 10, () => ({ simulate: { duration_ms: 200 } }), 5);
    const oneTask = await fetch(`${herald.baseUrl}/v1/tasks/${before[0]}`, { headers: env.headers });
    expect(oneTask.status).toBe(200);
    const elapsed = Date.now() - down;
    if (elapsed < 10_000) await new Promise((r) => setTimeout(r, 10_000 - elapsed));
    await env.redis.start();

    const all = [...before, ...during];
    await eventually(async () => (all.every((id) => env!.finished().has(id)) ? true : undefined), {
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    expect(await statusCounts(herald.baseUrl, env.headers)).toEqual({ completed: all.length });
    expect((await fetch(`${herald.baseUrl}/health/ready`)).status).toBe(200);
    recordFigures('Redis stopped for 10 s mid-run (no persistence: restarted empty)', {
      tasks: all.length,
      faults: 1,
      created_during_outage: during.length,
      terminal_webhooks_received: env.finished().size,
      lost: all.length - env.finished().size,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  });

  it('receiver down for a while: deliveries complete on schedule once it is back; exhausted ones are failed, listed and replayable', async () => {
    let up = false;
    env = await faultEnvironment({ respond: () => (up ? { status: 200 } : { status: 503, body: 'maintenance' }) });
    // The retry schedule is under test here, so the circuit breaker (which holds deliveries without spending their
    // attempts while a target fails) stays shut; test/e2e/delivery-controls.e2e.ts covers the circuit.
    const herald = await spawnHerald({ ...env.env, CIRCUIT_FAILURES: '10000' });
    env.onCleanup(() => herald.kill9());
    const t0 = Date.now();
    // Default schedule here: 10 attempts over ~11 s. The short-budget ones give up during the outage.
    const patient = await env.submit(herald.baseUrl, 20, () => ({
      webhook_events: ['completed'],
      simulate: { duration_ms: 100 },
    }));
    const hasty = await env.submit(herald.baseUrl, 5, () => ({
      webhook_events: ['completed'],
      simulate: { duration_ms: 100 },
      webhook_retry: { max_attempts: 2, schedule: ['0s', '100ms'] },
    }));
    const deliveriesOf = async (id: string) =>
      (
        (await (await fetch(`${herald.baseUrl}/v1/tasks/${id}/deliveries`, { headers: env!.headers })).json()) as {
          data: Array<{ id: string; status: string; attempts: number }>;
        }
      ).data;
    for (const id of hasty) {
      await eventually(async () => ((await deliveriesOf(id))[0]?.status === 'failed' ? true : undefined), {
        timeoutMs: 20_000,
      });
    }
    await new Promise((r) => setTimeout(r, 1_500));
    up = true;
    await eventually(
      async () => {
        const lists = await Promise.all(patient.map(deliveriesOf));
        return lists.every((l) => l[0]?.status === 'succeeded') ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
    const failed = await Promise.all(hasty.map(async (id) => (await deliveriesOf(id))[0]));
    for (const d of failed) expect(d).toMatchObject({ status: 'failed', attempts: 2 });
    for (const d of failed) {
      const res = await fetch(`${herald.baseUrl}/v1/deliveries/${d.id}/redeliver`, {
        method: 'POST',
        headers: env.headers,
      });
      expect(res.status).toBe(202);
    }
    await eventually(
      async () => {
        const lists = await Promise.all(hasty.map(deliveriesOf));
        return lists.every((l) => l.some((d) => d.status === 'succeeded')) ? true : undefined;
      },
      { timeoutMs: 20_000 },
    );
    recordFigures('receiver answering 503 for ~3 s, then back', {
      tasks: patient.length + hasty.length,
      faults: 1,
      delivered_after_outage: patient.length,
      exhausted_then_replayed: hasty.length,
      lost: 0,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  });

  it('SIGTERM under load: the process drains and exits 0; nothing is lost after restart', async () => {
    env = await faultEnvironment({ respond: () => ({ status: 200, delayMs: 150 }) });
    const first = await spawnHerald(env.env);
    env.onCleanup(() => first.kill9());
    const t0 = Date.now();
    const ids = await env.submit(first.baseUrl, 200, (i) => ({ simulate: { duration_ms: 500 + (i % 5) * 200 } }));
    await eventually(async () => (env!.finished().size >= 20 ? true : undefined), { timeoutMs: 30_000 });
    const stopAt = Date.now();
    const code = await first.terminate();
    expect(code).toBe(0);
    const drainMs = Date.now() - stopAt;
    expect(env.finished().size).toBeLessThan(ids.length);

    const second = await spawnHerald(env.env);
    env.onCleanup(() => second.kill9());
    await eventually(async () => (ids.every((id) => env!.finished().has(id)) ? true : undefined), {
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    expect(await statusCounts(second.baseUrl, env.headers)).toEqual({ completed: ids.length });
    expect(env.duplicates().sameId).toBe(true);
    recordFigures('SIGTERM under load, then restart', {
      tasks: ids.length,
      faults: 1,
      drain_ms: drainMs,
      terminal_webhooks_received: env.finished().size,
      lost: ids.length - env.finished().size,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  });
});
