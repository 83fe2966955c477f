// The worker protocol (docs/WORKERS.md): lease → complete cycles per second with 32 workers doing no work, against
// a bare BullMQ Worker taking the same number of jobs, and create → lease latency at a fixed offered rate.
// The workers are the SDK's runWorker (dist/worker-sdk), each long-polling for one job at a time.
import http from 'node:http';
import { runWorker } from '../dist/worker-sdk/index.js';
import { bullmqNoop } from './baselines/bullmq-noop.mjs';
import {
  cpuSecondsOf,
  createDatabase,
  heraldEnv,
  percentile,
  postCreate,
  sleep,
  startHerald,
  tempDir,
  until,
} from './lib.mjs';

export const WORKER_TOKEN = 'hw_bench_0123456789abcdef0123456789';
const OUTPUT = [{ url: 'https://cdn.example/out.png', mime_type: 'image/png' }];

/** `onJob(job)` runs as each job arrives; the returned `completed()` counts completes Herald acknowledged. */
export function startWorkers(base, count, onJob) {
  let completed = 0;
  const workers = Array.from({ length: count }, (_, i) =>
    runWorker({
      url: base,
      token: WORKER_TOKEN,
      models: ['bench-*'],
      workerId: `bench-${i}`,
      waitSeconds: 30,
      handler: async (job) => (onJob(job), OUTPUT),
      log: (level, message) => {
        if (message.endsWith(' completed')) completed++;
        else if (level !== 'info') process.stderr.write(`bench worker ${level}: ${message}\n`);
      },
    }),
  );
  return { completed: () => completed, stop: () => Promise.all(workers.map((w) => w.stop({ graceMs: 1_000 }))) };
}

export function poster(base, apiKey, connections) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const body = JSON.stringify({ model: 'bench-image', prompt: 'A lighthouse at dusk', size: '512x512' });
  const create = async () => (await postCreate(agent, `${base}/v1/images/generations/async`, apiKey, body)).taskId;
  return { create, close: () => agent.destroy() };
}

/**
 * `tasks` tasks wait in the queue, then `workers` SDK workers (in this process) lease and complete them as fast as
 * they can: cycles/s, and the CPU each cycle cost Herald (all its threads, /proc) and the workers (this process's
 * CPU over the same span), which unlike cycles/s do not move much with the machine's other load.
 */
export async function cycles(herald, client, tasks, workers) {
  const ids = [];
  for (let i = 0; i < tasks; i += 64)
    ids.push(...(await Promise.all(Array.from({ length: Math.min(64, tasks - i) }, client.create))));
  const created = ids.filter(Boolean).length;
  const t0 = performance.now();
  const herald0 = cpuSecondsOf(herald.pid);
  const own0 = process.cpuUsage();
  const pool = startWorkers(herald.base, workers, () => undefined);
  await until(() => pool.completed() >= created, 600_000, `${created} worker completes`);
  const seconds = (performance.now() - t0) / 1000;
  const heraldCpu = cpuSecondsOf(herald.pid) - herald0;
  const own = process.cpuUsage(own0);
  await pool.stop();
  return {
    tasks: created,
    workers,
    per_s: Math.round(created / seconds),
    herald_cpu_us_per_cycle: Math.round((heraldCpu * 1e6) / created),
    workers_cpu_us_per_cycle: Math.round((own.user + own.system) / created),
  };
}

export async function workersBench({ redis, tasks, workers, rates, seconds, warmupSeconds, emit }) {
  const tmp = tempDir();
  const db = await createDatabase('sqlite', tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, {
    QUEUE_PREFIX: 'bwrk',
    MODEL_ROUTES: 'bench-*=workers,*=simulator',
    BOOTSTRAP_WORKER_TOKEN: WORKER_TOKEN,
  });
  const herald = await startHerald(env);
  const client = poster(herald.base, env.BOOTSTRAP_API_KEY, 64);

  // 1. Cycles: `tasks` tasks wait in the queue, then `workers` workers lease and complete them as fast as they can.
  const run = await cycles(herald, client, tasks, workers);
  const heraldRate = run.per_s;
  const bullRate = await bullmqNoop(redis.url, run.tasks, workers);
  emit({
    measure: 'worker_cycles_per_s',
    system: 'Herald workers (sqlite)',
    workers,
    tasks: run.tasks,
    value: Math.round(heraldRate),
    vs_bullmq: +(heraldRate / bullRate).toFixed(2),
    herald_cpu_us_per_cycle: run.herald_cpu_us_per_cycle,
    workers_cpu_us_per_cycle: run.workers_cpu_us_per_cycle,
  });
  emit({
    measure: 'worker_cycles_per_s',
    system: 'bare BullMQ Worker',
    workers,
    tasks: run.tasks,
    value: Math.round(bullRate),
  });

  // 2. Latency: the same idle workers long-poll while tasks are created at each rate; create sent → job in a handler.
  const leasedAt = new Map();
  const latencyPool = startWorkers(herald.base, workers, (job) => leasedAt.set(job.task_id, performance.now()));
  for (const rate of rates) {
    await sleep(500); // every worker is waiting in a long-poll
    const sentAt = new Map();
    const warmup = rate * warmupSeconds;
    const total = warmup + rate * seconds;
    const measured = [];
    const start = performance.now();
    const inflight = [];
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      if (due > performance.now()) await sleep(due - performance.now());
      const at = performance.now();
      inflight.push(client.create().then((id) => id && (sentAt.set(id, at), i >= warmup && measured.push(id))));
    }
    await Promise.all(inflight);
    await until(() => measured.every((id) => leasedAt.has(id)), 600_000, 'every task leased');
    const latencies = measured.map((id) => leasedAt.get(id) - sentAt.get(id)).sort((a, b) => a - b);
    emit({
      measure: 'create_to_lease_ms',
      system: 'Herald workers (sqlite)',
      offered_per_s: rate,
      workers,
      tasks: latencies.length,
      warmup_s: warmupSeconds,
      p50: +percentile(latencies, 50).toFixed(1),
      p95: +percentile(latencies, 95).toFixed(1),
      p99: +percentile(latencies, 99).toFixed(1),
    });
  }
  await latencyPool.stop();
  client.close();
  await herald.stop();
  await db.drop();
  tmp.remove();
}
