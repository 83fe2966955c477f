// Tenant streams fan-out (bench/run.mjs --only=streams): WebSocket subscribers on one API process (ROLE=api; the
// generation worker is its own process) while tasks produce ~eventsPerSecond events/s (each task sends queued,
// started, 9 progress and completed over 1 s). Two shapes:
// - "all": every subscriber follows `*` of one tenant, so each event goes to every subscriber
//   (eventsPerSecond × subscribers WebSocket messages/s);
// - "tenants": the subscribers are spread over `tenants` tenants (a few dashboard tabs or backends each), following
//   `*` of their own tenant, and the tasks are spread over the same tenants.
// Latency = receipt − the event's created_at (set inside its transaction, so commit → receipt and a little more),
// sampled on one event in ten on every subscriber, for events created after the warm-up. The subscribers run in
// two child processes sharing the machine with Herald; their own event-loop delay is reported, so a late receipt
// can be told from a late send. BENCH_API_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") goes to the API process.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {
  addTenants,
  cpuSecondsOf,
  createDatabase,
  heraldEnv,
  sleep,
  sqliteQuery,
  startHerald,
  tempDir,
  until,
  postCreate,
} from './lib.mjs';

const CLIENT_PROCESSES = 2;

// CPU seconds of a process so far, to tell Herald's share of the cores from the subscribers'.
const cpuOf = cpuSecondsOf;
const loadAverage = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

function histogram() {
  const h = new Array(60_001).fill(0);
  return {
    add: (sparse) => sparse.forEach(([ms, n]) => (h[ms] += n)),
    total: () => h.reduce((a, b) => a + b, 0),
    pct(p) {
      const total = this.total();
      let seen = 0;
      for (let ms = 0; ms < h.length; ms++) if ((seen += h[ms]) >= total * p && total > 0) return ms;
      return null;
    },
  };
}

/** One child process of subscribers, talking over stdin/stdout (bench/stream-clients.mjs). */
function subscriberProcess(base, keys, count, from, to) {
  const child = spawn(
    process.execPath,
    [
      path.join(import.meta.dirname, 'stream-clients.mjs'),
      base,
      keys.join(','),
      String(count),
      String(from),
      String(to),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  const waiters = [];
  child.stdout.on('data', (d) => {
    out += d;
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line === 'ready') child.ready = true;
      else if (line.startsWith('{')) waiters.shift()?.(JSON.parse(line));
    }
  });
  const ask = (what) => new Promise((resolve) => (waiters.push(resolve), child.stdin.write(`${what}\n`)));
  return { child, keys, count, ask };
}

export async function streamsBench({
  redis,
  shape,
  subscribers,
  tenants = 1,
  eventsPerSecond,
  seconds,
  warmupSeconds,
  emit,
}) {
  const tmp = tempDir();
  const db = await createDatabase('sqlite', tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, {
    QUEUE_PREFIX: `bstr${shape}`,
    GENERATION_CONCURRENCY: '200',
    STREAM_MAX_CONNECTIONS_PER_KEY: '100000',
  });
  const api = await startHerald(
    { ...env, ROLE: 'api' },
    process.env.BENCH_API_NODE_ARGS ? process.env.BENCH_API_NODE_ARGS.split(' ') : [],
  );
  const worker = await startHerald({ ...env, ROLE: 'worker' });
  const keys = shape === 'all' ? [env.BOOTSTRAP_API_KEY] : (await addTenants(db, tenants)).map((t) => t.key);
  const tenantOfKey = new Map();
  for (const row of await sqliteQuery(db, 'SELECT k.key_hash AS hash, k.tenant_id AS tenant FROM api_keys k'))
    tenantOfKey.set(row.hash, row.tenant);
  const tenantOf = (key) => tenantOfKey.get(createHash('sha256').update(key).digest('hex'));
  const rssBefore = api.rssMb();
  const tasksPerSecond = eventsPerSecond / 12;
  const t0 = Date.now() + 2_000 + subscribers * 5;
  const from = t0 + warmupSeconds * 1000;
  const to = from + seconds * 1000;
  const perProcess = subscribers / CLIENT_PROCESSES;
  const clients = Array.from({ length: CLIENT_PROCESSES }, () =>
    subscriberProcess(api.base, keys, perProcess, from, to),
  );
  await until(() => clients.every((c) => c.child.ready), 120_000, `${subscribers} subscribers`);
  const rssSubscribed = api.rssMb();
  const load0 = loadAverage();
  const cpu0 = {
    api: cpuOf(api.pid),
    worker: cpuOf(worker.pid),
    clients: clients.reduce((a, c) => a + cpuOf(c.child.pid), 0),
    at: Date.now(),
  };
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, api.rssMb())), 100);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const body = JSON.stringify({ model: 'm', prompt: 'p', simulate: { duration_ms: 1_000 } });
  let createErrors = 0;
  const post = async (key) => {
    const { status } = await postCreate(agent, `${api.base}/v1/videos/generations/async`, key, body);
    if (status !== 202) createErrors++;
  };
  if (t0 > Date.now()) await sleep(t0 - Date.now());
  const inflight = [];
  const totalTasks = Math.round(tasksPerSecond * (warmupSeconds + seconds));
  for (let i = 0; i < totalTasks; i++) {
    const due = t0 + (i * 1000) / tasksPerSecond;
    if (due > Date.now()) await sleep(due - Date.now());
    inflight.push(post(keys[i % keys.length]));
  }
  await Promise.all(inflight);
  const lastCreate = Date.now();
  const load1 = loadAverage();
  // Every task has run to its end: then each subscriber is due every event of its tenant.
  await until(
    async () =>
      (await sqliteQuery(db, "SELECT COUNT(*) AS n FROM task_events WHERE type IN ('task.completed','task.failed')"))[0]
        .n >=
      totalTasks - createErrors,
    120_000,
    'every task finished',
  );
  const eventsOf = new Map(
    (await sqliteQuery(db, 'SELECT tenant_id AS tenant, COUNT(*) AS n FROM task_events GROUP BY tenant_id')).map(
      (r) => [r.tenant, r.n],
    ),
  );
  const due = (client, j) => eventsOf.get(tenantOf(client.keys[j % client.keys.length])) ?? 0;
  const dueTotal = clients.reduce(
    (a, c) => a + Array.from({ length: c.count }, (_, j) => due(c, j)).reduce((x, y) => x + y, 0),
    0,
  );
  // Waits (bounded) for every subscriber to have everything: how long after the last create tells whether it kept up.
  let drained = null;
  const drainDeadline = Date.now() + 60_000;
  while (Date.now() < drainDeadline) {
    const got = (await Promise.all(clients.map((c) => c.ask('count')))).reduce((a, r) => a + r.received, 0);
    if (got >= dueTotal) {
      drained = (Date.now() - lastCreate) / 1000;
      break;
    }
    await sleep(100);
  }
  clearInterval(sampler);
  // CPU from the first create until everything arrived: per message, it says what each side costs whatever else
  // shares the machine (the share of a core it got says more about the machine's load).
  const cpu = {
    api: cpuOf(api.pid) - cpu0.api,
    worker: cpuOf(worker.pid) - cpu0.worker,
    subscribers: clients.reduce((a, c) => a + cpuOf(c.child.pid), 0) - cpu0.clients,
  };
  const wall = (Date.now() - cpu0.at) / 1000;
  const results = await Promise.all(clients.map((c) => c.ask('report')));
  const latency = histogram();
  const lag = histogram();
  for (const r of results) {
    latency.add(r.hist);
    lag.add(r.lag);
  }
  let complete = 0;
  let fewest = 1;
  results.forEach((r, c) =>
    r.perSubscriber.forEach((n, j) => {
      const want = due(clients[c], j);
      if (n === want) complete++;
      fewest = Math.min(fewest, want ? n / want : 1);
    }),
  );
  const committed = [...eventsOf.values()].reduce((a, b) => a + b, 0);
  emit({
    measure: 'stream_fanout',
    shape,
    system: 'Herald (sqlite, ROLE=api + ROLE=worker)',
    subscribers,
    tenants: keys.length,
    offered_events_per_s: eventsPerSecond,
    offered_ws_messages_per_s: Math.round((eventsPerSecond * subscribers) / keys.length),
    events_committed: committed,
    ws_messages_due: dueTotal,
    ws_messages_received: results.reduce((a, r) => a + r.received, 0),
    subscribers_with_every_event: complete,
    fewest_received_share: +fewest.toFixed(3),
    drained_s_after_last_create: drained,
    p50_ms: latency.pct(0.5),
    p95_ms: latency.pct(0.95),
    p99_ms: latency.pct(0.99),
    max_ms: latency.pct(1),
    latency_samples: latency.total(),
    subscriber_loop_delay_p99_ms: lag.pct(0.99),
    out_of_order: results.reduce((a, r) => a + r.outOfOrder, 0),
    closed: results.reduce((a, r) => a + r.closed, 0),
    create_errors: createErrors,
    api_rss_mb: { idle: Math.round(rssBefore), subscribed: Math.round(rssSubscribed), peak: Math.round(peakRss) },
    cpu_s: {
      api: +cpu.api.toFixed(1),
      worker: +cpu.worker.toFixed(1),
      subscribers: +cpu.subscribers.toFixed(1),
      wall: +wall.toFixed(1),
    },
    cpu_us_per_message: {
      api: +((cpu.api * 1e6) / dueTotal).toFixed(2),
      subscribers: +((cpu.subscribers * 1e6) / dueTotal).toFixed(2),
    },
    load_average: [load0, load1],
  });
  agent.destroy();
  await worker.stop();
  await api.stop();
  await db.drop();
  tmp.remove();
}
