import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { faultEnvironment, statusCounts } from '../support/fault-env.js';
import { eventually } from '../support/herald.js';
import { spawnHerald, startPrivateRedis } from '../support/processes.js';
import { startRedisCluster, type RedisClusterHandle } from '../support/redis-cluster.js';
import { recordFigures } from '../support/reliability.js';

// A fleet runs on PostgreSQL: one api and two worker processes share the database and the cluster.
process.env.HERALD_TEST_DB = 'postgres';

let cluster: RedisClusterHandle;
let env: Awaited<ReturnType<typeof faultEnvironment>> | undefined;
beforeAll(async () => {
  cluster = await startRedisCluster({ nodeTimeoutMs: 1_000 });
});
afterAll(async () => cluster?.stop());
afterEach(async () => {
  await env?.cleanup();
  env = undefined;
});

const isTerminal = (w: { body?: { webhook_type?: unknown } }) =>
  String(w.body?.webhook_type ?? '').endsWith('_completed');

/** A fault environment whose Herald processes use the cluster, under a queue prefix of their own. */
async function fleet() {
  const prefix = `{hc${randomBytes(3).toString('hex')}}`;
  env = await faultEnvironment({
    env: {
      REDIS_URL: '',
      REDIS_CLUSTER_NODES: cluster.seeds,
      QUEUE_PREFIX: prefix,
      GENERATION_CONCURRENCY: '50',
      WEBHOOK_CONCURRENCY: '64',
    },
  });
  const e = env;
  const api = await spawnHerald({ ...e.env, ROLE: 'api' });
  e.onCleanup(() => api.kill9());
  const workers: Array<Awaited<ReturnType<typeof spawnHerald>>> = [];
  for (let i = 0; i < 2; i++) {
    const w = await spawnHerald({ ...e.env, ROLE: 'worker' });
    e.onCleanup(() => w.kill9());
    workers.push(w);
  }
  const allDone = (ids: string[]) =>
    eventually(async () => (ids.every((id) => e.finished().has(id)) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  const reach = (n: number) =>
    eventually(async () => (e.finished().size >= n ? true : undefined), { timeoutMs: 60_000, intervalMs: 50 });
  const explain = (err: Error) =>
    new Error(
      `${err.message}\napi: ${api.output().slice(-1500)}\nworkers: ${workers.map((w) => w.output().slice(-1500)).join('\n---\n')}`,
    );
  return { e, prefix, api, workers, allDone, reach, explain };
}

describe('Redis Cluster (3 masters, 1 replica each)', () => {
  it('300 tasks with webhooks through one api and two workers: every terminal webhook arrives once', async () => {
    const { e, api, workers, allDone, explain } = await fleet();
    const t0 = Date.now();
    const ids = await e.submit(api.baseUrl, 300, (i) => ({ simulate: { duration_ms: 100 + (i % 5) * 50 } }));
    await allDone(ids).catch((err) => Promise.reject(explain(err)));
    expect(await statusCounts(api.baseUrl, e.headers)).toEqual({ completed: 300 });
    const perTask = new Map<string, number>();
    for (const w of e.receiver.received.filter(isTerminal))
      perTask.set(w.body.task_id, (perTask.get(w.body.task_id) ?? 0) + 1);
    expect(perTask.size).toBe(300);
    expect([...perTask.values()].every((n) => n === 1)).toBe(true);
    // SIGTERM drains and exits 0: the shared cluster client is closed after BullMQ's queues and workers.
    for (const p of [...workers, api]) expect(await p.terminate()).toBe(0);
    recordFigures('Redis Cluster: 300 tasks, one api + two workers, no fault', {
      tasks: 300,
      faults: 0,
      terminal_webhooks_received: e.finished().size,
      lost: 300 - e.finished().size,
      repeated_deliveries: e.duplicates().repeats,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  });

  it('the master holding the queue keys killed -9 mid-run: its replica takes over, nothing is lost, repeats share their webhook-id, SSE and Prefer: wait answer', async () => {
    const { e, prefix, api, allDone, reach, explain } = await fleet();
    const t0 = Date.now();
    const ids = await e.submit(api.baseUrl, 300, (i) => ({ simulate: { duration_ms: 300 + (i % 10) * 100 } }));
    await reach(60);
    const master = await cluster.masterOf(prefix);
    await cluster.kill(master.port);

    // Creates during the failover: each is accepted (and must then complete) or refused with 503 + Retry-After.
    const during: string[] = [];
    let refused = 0;
    let failingOver = true;
    const failover = cluster.waitFailover(prefix, master.port).finally(() => (failingOver = false));
    while (failingOver) {
      const answers = await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          const res = await fetch(`${api.baseUrl}/v1/images/generations/async`, {
            method: 'POST',
            headers: e.headers,
            body: JSON.stringify({
              model: 'm',
              prompt: `during ${i}`,
              webhook_url: e.receiver.url(),
              simulate: { duration_ms: 200 },
            }),
          });
          return {
            status: res.status,
            retryAfter: res.headers.get('retry-after'),
            body: (await res.json()) as { task_id?: string },
          };
        }),
      );
      for (const a of answers) {
        if (a.status === 202) during.push(a.body.task_id!);
        else {
          expect(a.status).toBe(503);
          expect(Number(a.retryAfter)).toBeGreaterThan(0);
          refused++;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const promoted = await failover;
    expect(promoted.port).not.toBe(master.port);
    await eventually(async () => ((await fetch(`${api.baseUrl}/health/ready`)).status === 200 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 200,
    });

    const all = [...ids, ...during];
    await allDone(all).catch((err) => Promise.reject(explain(err)));
    expect(await statusCounts(api.baseUrl, e.headers)).toEqual({ completed: all.length });
    const dup = e.duplicates();
    expect(dup.sameId).toBe(true);

    // Pub/sub across the cluster after the failover: a worker's events reach the api's SSE stream and Prefer: wait.
    const streamed = await e.submit(api.baseUrl, 1, () => ({ simulate: { duration_ms: 500 } }));
    const sse = await fetch(`${api.baseUrl}/v1/tasks/${streamed[0]}/events/stream`, {
      headers: e.headers,
      signal: AbortSignal.timeout(30_000),
    });
    expect(sse.status).toBe(200);
    expect(await sse.text()).toContain('event: task.completed');
    const waited = await fetch(`${api.baseUrl}/v1/images/generations/async`, {
      method: 'POST',
      headers: { ...e.headers, prefer: 'wait=20' },
      body: JSON.stringify({ model: 'm', prompt: 'after', simulate: { duration_ms: 300 } }),
    });
    expect(waited.status).toBe(200);
    expect(((await waited.json()) as { status: string }).status).toBe('completed');

    recordFigures('Redis Cluster: 300 tasks, the master holding the queue keys killed -9 mid-run (replica promoted)', {
      tasks: all.length,
      faults: 1,
      created_during_failover: during.length,
      refused_503: refused,
      failover_ms: promoted.ms,
      terminal_webhooks_received: e.finished().size,
      lost: all.length - [...all].filter((id) => e.finished().has(id)).length,
      repeated_deliveries: dup.repeats,
      seconds: Math.round((Date.now() - t0) / 1000),
    });
  });

  it('the node holding the API subscriber connection killed -9: the subscription moves, SSE and Prefer: wait answer', async () => {
    // A cluster of its own: the one above has lost a master and its replica-less successor must not be next.
    const own = await startRedisCluster({ nodeTimeoutMs: 1_000 });
    try {
      const prefix = `{hs${randomBytes(3).toString('hex')}}`;
      env = await faultEnvironment({ env: { REDIS_URL: '', REDIS_CLUSTER_NODES: own.seeds, QUEUE_PREFIX: prefix } });
      const e = env;
      const api = await spawnHerald({ ...e.env, ROLE: 'api' });
      e.onCleanup(() => api.kill9());
      const worker = await spawnHerald({ ...e.env, ROLE: 'worker' });
      e.onCleanup(() => worker.kill9());
      const followed = async () => {
        const [id] = await e.submit(api.baseUrl, 1, () => ({ simulate: { duration_ms: 500 } }));
        const sse = await fetch(`${api.baseUrl}/v1/tasks/${id}/events/stream`, {
          headers: e.headers,
          signal: AbortSignal.timeout(30_000),
        });
        return sse.text();
      };
      expect(await followed()).toContain('event: task.completed');
      // A stream kept open over the kill: its task finishes after the subscriber's node is gone.
      const [id] = await e.submit(api.baseUrl, 1, () => ({ simulate: { duration_ms: 6_000 } }));
      const open = fetch(`${api.baseUrl}/v1/tasks/${id}/events/stream`, {
        headers: e.headers,
        signal: AbortSignal.timeout(40_000),
      }).then((r) => r.text());
      const [subscriberPort] = await eventually(
        async () => {
          const ports = await own.subscriberPorts();
          return ports.length ? ports : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      await own.kill(subscriberPort);
      // ioredis subscribes again on another node (what the next stream's events arrive by).
      await eventually(async () => ((await own.subscriberPorts()).length ? true : undefined), {
        timeoutMs: 15_000,
        intervalMs: 100,
      });
      expect(await open).toContain('event: task.completed');
      expect(await followed()).toContain('event: task.completed');
      const waited = await fetch(`${api.baseUrl}/v1/images/generations/async`, {
        method: 'POST',
        headers: { ...e.headers, prefer: 'wait=20' },
        body: JSON.stringify({ model: 'm', prompt: 'p', simulate: { duration_ms: 300 } }),
      });
      expect(waited.status).toBe(200);
      expect(((await waited.json()) as { status: string }).status).toBe('completed');
    } finally {
      await env?.cleanup();
      env = undefined;
      await own.stop();
    }
  });

  it('refuses to start with one line naming a REDIS_CLUSTER_NODES entry that is unreachable or not a cluster node', async () => {
    const dead = `127.0.0.1:${cluster.ports[0] === 1 ? 2 : 1}`;
    const single = await startPrivateRedis();
    try {
      const base = {
        REDIS_URL: '',
        DATA_DIR: mkdtempSync(path.join(tmpdir(), 'herald-cluster-cli-')),
        LOG_LEVEL: 'error',
        ROLE: 'api',
      };
      const unreachable = await runCli(
        ['serve'],
        { ...base, REDIS_CLUSTER_NODES: `${cluster.seeds.split(',')[0]},${dead}` },
        30_000,
      );
      expect(unreachable.code).not.toBe(0);
      expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);
      expect(unreachable.stderr).toContain(`Cannot reach the Redis Cluster node ${dead} named in REDIS_CLUSTER_NODES`);
      const standalone = await runCli(
        ['serve'],
        { ...base, REDIS_CLUSTER_NODES: single.url.replace('redis://', '') },
        30_000,
      );
      expect(standalone.code).not.toBe(0);
      expect(standalone.stderr).toContain('is not a cluster node');
    } finally {
      await single.stop();
    }
  });
});
