#!/usr/bin/env node
// node bench/profile.mjs [sqlite|postgres] [n] [concurrency]: drains a preloaded outbox with Herald under
// --cpu-prof and prints the top self-time functions (the profile is kept in the printed directory).
// node bench/profile.mjs creates [seconds] [connections]: the same for task creation POSTs (SQLite).
// node bench/profile.mjs workers [tasks] [workers] [sqlite|postgres]: the same for worker lease → complete cycles.
// node bench/profile.mjs e2e [seconds] [connections] [step_ms] [sqlite|postgres]: the same for the end-to-end measure
// (tasks created over HTTP, eleven webhooks each; bench/e2e.mjs).
// node bench/profile.mjs batch [sqlite|postgres] [n] [concurrency]: the same for a preloaded outbox to an endpoint
// taking batches of 100 (max_wait_ms 0), with Herald's CPU per 1,000 events.
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  cpuSecondsOf,
  createDatabase,
  PAYLOAD,
  heraldEnv,
  preloadOutbox,
  startHerald,
  startReceiver,
  startRedis,
  tempDir,
  until,
  postCreate,
} from './lib.mjs';
import { poster, startWorkers, WORKER_TOKEN } from './workers.mjs';
import { e2eRun } from './e2e.mjs';

const [mode = 'sqlite', a, b] = process.argv.slice(2);
const receiver = await startReceiver();
const redis = await startRedis();
const tmp = tempDir();
const profDir = path.join(tmp.dir, 'prof');
const profArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
let db;
if (mode === 'e2e') {
  const [seconds, connections, stepMs, kind] = [
    Number(a ?? 10),
    Number(b ?? 64),
    Number(process.argv[5] ?? 5),
    process.argv[6] ?? 'sqlite',
  ];
  const r = await e2eRun({
    system: kind,
    redis,
    receiver,
    connections,
    seconds,
    warmupSeconds: 2,
    stepMs,
    nodeArgs: profArgs,
  });
  console.log(JSON.stringify(r));
} else if (mode === 'creates') {
  const [seconds, connections] = [Number(a ?? 10), Number(b ?? 32)];
  db = await createDatabase('sqlite', tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, {
    QUEUE_PREFIX: 'bprofc',
    GENERATION_CONCURRENCY: '1',
    SIMULATOR_DURATION_MS: '600000',
  });
  const herald = await startHerald(env, profArgs);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const body = JSON.stringify({
    model: 'minimax-video',
    prompt: 'A serene mountain landscape with clouds',
    duration: 6,
    size: '1280x720',
  });
  let count = 0;
  const end = Date.now() + seconds * 1000;
  const one = async () => {
    const { status } = await postCreate(
      agent,
      `${herald.base}/v1/videos/generations/async`,
      env.BOOTSTRAP_API_KEY,
      body,
    );
    if (status !== 0) count++;
  };
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  console.log(JSON.stringify({ mode, seconds, connections, per_s: Math.round(count / seconds) }));
  agent.destroy();
  await herald.stop();
} else if (mode === 'workers') {
  const [tasks, count, kind] = [Number(a ?? 5000), Number(b ?? 32), process.argv[5] ?? 'sqlite'];
  db = await createDatabase(kind, tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, {
    QUEUE_PREFIX: 'bprofw',
    SHUTDOWN_GRACE_MS: '500',
    MODEL_ROUTES: 'bench-*=workers,*=simulator',
    BOOTSTRAP_WORKER_TOKEN: WORKER_TOKEN,
  });
  const herald = await startHerald(env, profArgs);
  const client = poster(herald.base, env.BOOTSTRAP_API_KEY, 64);
  for (let i = 0; i < tasks; i += 64) await Promise.all(Array.from({ length: Math.min(64, tasks - i) }, client.create));
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const pool = startWorkers(herald.base, count, () => undefined);
  await until(() => pool.completed() >= tasks, 600_000, 'worker completes');
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    JSON.stringify({
      mode,
      kind,
      tasks,
      workers: count,
      per_s: Math.round(tasks / seconds),
      bench_cpu_us_per_cycle: Math.round((cpu.user + cpu.system) / tasks),
    }),
  );
  await pool.stop();
  client.close();
  await herald.stop();
} else if (mode === 'batch') {
  const [kind, n, c] = [a ?? 'sqlite', Number(b ?? 20_000), process.argv[5] ?? '64'];
  db = await createDatabase(kind, tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, { QUEUE_PREFIX: 'bprofb', WEBHOOK_CONCURRENCY: c });
  const boot = await startHerald(env);
  const created = await fetch(`${boot.base}/v1/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${env.BOOTSTRAP_API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiver.url, batch: { max_events: 100, max_wait_ms: 0 } }),
  }).then((r) => r.json());
  await boot.stop();
  const envelope = JSON.stringify({ id: 'e', type: 'task.completed', created: 0, data: JSON.parse(PAYLOAD) });
  await preloadOutbox(db, n, receiver.url, created.id, envelope);
  receiver.reset();
  let events = 0;
  let cpuAtFirst = 0;
  const herald = await startHerald(env, profArgs);
  receiver.state.onBody = (raw) => {
    if (!cpuAtFirst) cpuAtFirst = cpuSecondsOf(herald.pid);
    events += JSON.parse(raw.toString()).length;
  };
  await until(() => events >= n, 600_000, 'batched drain');
  const cpu = cpuSecondsOf(herald.pid) - cpuAtFirst;
  const seconds = (receiver.state.last - receiver.state.first) / 1000;
  console.log(
    JSON.stringify({
      mode,
      kind,
      n,
      requests: receiver.state.count,
      per_s: Math.round(n / seconds),
      herald_cpu_ms_per_1000: +((cpu * 1e6) / n).toFixed(1),
    }),
  );
  await herald.stop();
} else {
  const [n, c] = [Number(a ?? 5000), b ?? '64'];
  db = await createDatabase(mode, tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, { QUEUE_PREFIX: 'bprof', WEBHOOK_CONCURRENCY: c });
  await (await startHerald(env)).stop();
  await preloadOutbox(db, n, receiver.url);
  receiver.reset();
  const herald = await startHerald(env, profArgs);
  await until(() => receiver.state.count >= n, 600_000, 'drain');
  const seconds = (receiver.state.last - receiver.state.first) / 1000;
  console.log(JSON.stringify({ kind: mode, n, concurrency: Number(c), per_s: Math.round(n / seconds) }));
  await herald.stop();
}
const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
const profile = JSON.parse(readFileSync(path.join(profDir, file), 'utf8'));
const self = new Map();
const dt = new Map();
profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
let total = 0;
for (const node of profile.nodes) {
  const t = dt.get(node.id) ?? 0;
  total += t;
  const f = node.callFrame;
  const key = `${f.functionName || '(anon)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${f.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + t);
}
const pct = (t) => ((100 * t) / total).toFixed(1).padStart(5) + ' %';
for (const [k, t] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 25)) console.log(pct(t), k);
// Self time by package: where the process spends its CPU, coarsely.
const byPackage = new Map();
for (const node of profile.nodes) {
  const url = node.callFrame.url;
  const pkg = url.includes('node_modules/')
    ? url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1')
    : url.includes('/dist/')
      ? 'herald'
      : url.startsWith('node:')
        ? 'node core'
        : node.callFrame.functionName || '(native)';
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + (dt.get(node.id) ?? 0));
}
console.log('-- by package');
for (const [k, t] of [...byPackage].sort((x, y) => y[1] - x[1]).slice(0, 18)) console.log(pct(t), k);
console.log('profile:', path.join(profDir, file));
await db?.drop();
process.exit(0);
