// The end-to-end measure (issue 21): tasks created over HTTP, each sending ten progress webhooks and a terminal
// one, every webhook received — Herald against the same service written by hand with BullMQ and axios
// (baselines/bullmq-axios-tasks.mjs), in the same run, with the same receiver, settings and step timing.
//
// A closed loop: CONNECTIONS keep-alive clients each create a task (POST …/images/generations/async with a
// webhook_url to the bench's receiver), wait until its webhooks have arrived, and create the next. A task is done
// when its terminal webhook has arrived and, for the baseline, all eleven (it neither orders nor supersedes, so a
// progress webhook may come after the terminal one); for Herald the terminal one is the last of its lane, so
// whatever progress has not arrived by then was superseded by design. The first WARMUP seconds are not counted.
import { Redis } from 'ioredis';
import pg from 'pg';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  cpuSecondsOf,
  createDatabase,
  heraldEnv,
  percentile,
  postCreate,
  sleep,
  sqliteQuery,
  startHerald,
  tempDir,
  until,
} from './lib.mjs';

/** Steps of a simulated task: ten progress events, then the terminal one (SIMULATOR_STEPS). */
export const E2E_STEPS = 11;
/**
 * The closed loop's shape: connections (= tasks in flight = GENERATION_CONCURRENCY on both sides) and the time
 * between a task's steps. 20 ms keeps a task's lane idle when its next event comes at this load (event → receipt
 * p50 ~30-60 ms on the loaded machine, mostly below the 220 ms of a task's steps, and none superseded in the runs),
 * so both systems send the same eleven webhooks; 5 ms steps make Herald order and supersede (docs/BENCHMARKS.md).
 */
export const E2E_SHAPES = { full: [{ connections: 128, stepMs: 20 }], smoke: [{ connections: 16, stepMs: 5 }] };
const BASELINE = path.resolve('bench/baselines/bullmq-axios-tasks.mjs');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Runs every system `rounds` times, interleaved (the order turning each round), and emits one line per run and
 * one summary line per system: the medians and Herald's ratio to the baseline.
 */
export async function e2eBench({
  redis,
  receiver,
  connections,
  seconds,
  warmupSeconds,
  stepMs,
  rounds,
  dbKinds,
  emit,
}) {
  const systems = ['baseline', ...dbKinds];
  const runs = Object.fromEntries(systems.map((s) => [s, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...systems].reverse() : systems;
    for (const system of order) {
      const r = await e2eRun({ system, redis, receiver, connections, seconds, warmupSeconds, stepMs });
      runs[system].push(r);
      emit({ measure: 'e2e_run', round, ...r });
    }
  }
  // The figure: tasks fully delivered (all eleven webhooks received) per second; a task whose progress Herald
  // superseded counts among those whose terminal webhook arrived (terminal_tasks_per_s), not here.
  const base = median(runs.baseline.map((r) => r.full_tasks_per_s));
  const baseHooks = median(runs.baseline.map((r) => r.webhooks_per_s));
  for (const system of systems) {
    const rs = runs[system];
    const tasks = median(rs.map((r) => r.full_tasks_per_s));
    const hooks = median(rs.map((r) => r.webhooks_per_s));
    emit({
      measure: 'e2e_tasks_per_s',
      system: rs[0].system,
      connections,
      step_ms: stepMs,
      value: Math.round(tasks),
      webhooks_per_s: Math.round(hooks),
      ...(system === 'baseline'
        ? {}
        : { vs_bullmq_axios: +(tasks / base).toFixed(2), webhooks_vs_bullmq_axios: +(hooks / baseHooks).toFixed(2) }),
      terminal_tasks_per_s: Math.round(median(rs.map((r) => r.tasks_per_s))),
      runs: rs.map((r) => Math.round(r.full_tasks_per_s)),
      progress_received: rs.reduce((a, r) => a + r.progress_received, 0),
      progress_superseded: rs.reduce((a, r) => a + r.progress_superseded, 0),
      incomplete: rs.reduce((a, r) => a + r.incomplete, 0),
      out_of_order: rs.reduce((a, r) => a + r.out_of_order, 0),
      cpu_ms_per_task: median(rs.map((r) => r.cpu_ms_per_task)),
      main_thread_ms_per_task: median(rs.map((r) => r.main_thread_ms_per_task)),
      main_thread_busy_percent: median(rs.map((r) => r.main_thread_busy_percent)),
      redis_cpu_ms_per_task: median(rs.map((r) => r.redis_cpu_ms_per_task)),
      p50_ms: median(rs.map((r) => r.p50_ms)),
      p99_ms: median(rs.map((r) => r.p99_ms)),
      load: rs.map((r) => r.load),
    });
  }
}

/** One measured run of one system: a fresh process (and database), the closed loop, then the check. */
export async function e2eRun({ system, redis, receiver, connections, seconds, warmupSeconds, stepMs, nodeArgs = [] }) {
  const tmp = tempDir();
  const prefix = `be${Math.random().toString(36).slice(2, 8)}`;
  const settings = {
    QUEUE_PREFIX: prefix,
    GENERATION_CONCURRENCY: String(connections),
    WEBHOOK_CONCURRENCY: '64',
    SIMULATOR_STEPS: String(E2E_STEPS),
  };
  const herald = system !== 'baseline';
  const db = herald ? await createDatabase(system, tmp.dir) : undefined;
  const env = herald
    ? heraldEnv(db, redis, tmp.dir, settings)
    : { PATH: process.env.PATH, REDIS_URL: redis.url, BOOTSTRAP_API_KEY: 'none', ...settings };
  const proc = await startHerald(env, nodeArgs, herald ? undefined : [BASELINE]);
  const name = herald ? `Herald (${system})` : 'BullMQ + axios by hand';

  const tasks = new Map();
  const entry = (id) => {
    let t = tasks.get(id);
    if (!t) tasks.set(id, (t = { received: 0, progress: 0, terminal: false, lastSeq: 0, outOfOrder: 0 }));
    return t;
  };
  let measuring = false;
  let hooksInWindow = 0;
  const receipts = [];
  receiver.reset();
  receiver.state.onBody = (raw, at) => {
    const body = JSON.parse(raw.toString());
    const t = entry(body.task_id);
    t.received++;
    const eventAt = Date.parse(body.timestamp);
    if (measuring) receipts.push(at - eventAt);
    t.firstEventAt ??= eventAt;
    t.firstEventAt = Math.min(t.firstEventAt, eventAt);
    t.lastEventAt = Math.max(t.lastEventAt ?? 0, eventAt);
    if (body.sequence < t.lastSeq) t.outOfOrder++;
    t.lastSeq = Math.max(t.lastSeq, body.sequence);
    if (body.status === 'processing') t.progress++;
    else t.terminal = true;
    if (measuring) hooksInWindow++;
    if (t.terminal && (herald || t.received === E2E_STEPS)) {
      t.doneAt = at;
      t.resolve?.();
    }
  };

  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const url = `${proc.base}/v1/images/generations/async`;
  const body = JSON.stringify({
    model: 'bench-image',
    prompt: 'A lighthouse at dusk',
    webhook_url: receiver.url,
    simulate: { duration_ms: stepMs * E2E_STEPS },
  });
  let errors = 0;
  let timedOut = 0;
  const t0 = Date.now();
  const windowStart = t0 + warmupSeconds * 1000;
  const end = windowStart + seconds * 1000;
  let cpuAtStart = 0;
  let mainCpuAtStart = 0;
  let mainCpuInWindow = 0;
  let redisCpuAtStart = 0;
  let redisCpuInWindow = 0;
  let loadAtStart = 0;
  const startWindow = setTimeout(() => {
    measuring = true;
    cpuAtStart = cpuSecondsOf(proc.pid);
    mainCpuAtStart = cpuSecondsOf(proc.pid, { mainThread: true });
    redisCpuAtStart = cpuSecondsOf(redis.pid);
    loadAtStart = readLoad();
  }, windowStart - t0);
  let cpuInWindow = 0;
  const endWindow = setTimeout(() => {
    measuring = false;
    cpuInWindow = cpuSecondsOf(proc.pid) - cpuAtStart;
    mainCpuInWindow = cpuSecondsOf(proc.pid, { mainThread: true }) - mainCpuAtStart;
    redisCpuInWindow = cpuSecondsOf(redis.pid) - redisCpuAtStart;
  }, end - t0);
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (Date.now() < end) {
        const sentAt = performance.timeOrigin + performance.now();
        const { status, taskId } = await postCreate(agent, url, env.BOOTSTRAP_API_KEY, body);
        if (status !== 202) {
          errors++;
          await sleep(10);
          continue;
        }
        const t = entry(taskId);
        t.sentAt = sentAt;
        if (t.doneAt === undefined) {
          const arrived = new Promise((r) => (t.resolve = r));
          const timeout = sleep(30_000).then(() => 'timeout');
          if ((await Promise.race([arrived, timeout])) === 'timeout') timedOut++;
        }
      }
    }),
  );
  clearTimeout(startWindow);
  clearTimeout(endWindow);
  // Every task created gets its terminal webhook (bounded wait), then the delivery rows say what was superseded.
  await until(() => [...tasks.values()].every((t) => t.terminal), 60_000, `${name}: every terminal webhook`).catch(
    () => undefined,
  );
  await sleep(200); // a baseline progress webhook may still trail its terminal one
  const load = readLoad();
  const all = [...tasks.values()].filter((t) => t.sentAt !== undefined);
  const inWindow = all.filter((t) => t.doneAt >= windowStart && t.doneAt < end);
  const latencies = inWindow.map((t) => t.doneAt - t.sentAt).sort((a, b) => a - b);
  // Where a task's time goes: create sent → its first event, first → last event (the steps, 11 × step_ms at
  // best), and each webhook's event → receipt.
  const sorted = (xs) => xs.sort((a, b) => a - b);
  const toFirstEvent = sorted(inWindow.map((t) => t.firstEventAt - t.sentAt));
  const steps = sorted(inWindow.map((t) => t.lastEventAt - t.firstEventAt));
  sorted(receipts);
  const statuses = herald ? await deliveryStatuses(db) : {};
  const expectedProgress = all.length * (E2E_STEPS - 1);
  const progressReceived = all.reduce((a, t) => a + t.progress, 0);
  agent.destroy();
  await proc.stop();
  const jobs = await jobsAdded(redis.url, prefix);
  await db?.drop();
  tmp.remove();
  return {
    system: name,
    connections,
    step_ms: stepMs,
    tasks: all.length,
    tasks_per_s: inWindow.length / seconds,
    full_tasks_per_s: inWindow.filter((t) => t.received === E2E_STEPS).length / seconds,
    webhooks_per_s: hooksInWindow / seconds,
    progress_received: progressReceived,
    progress_expected: expectedProgress,
    progress_superseded: statuses.superseded ?? 0,
    incomplete: all.filter((t) => !t.terminal).length,
    // Progress neither received nor superseded (a lost webhook): must be 0.
    progress_missing: expectedProgress - progressReceived - (statuses.superseded ?? 0),
    out_of_order: all.reduce((a, t) => a + t.outOfOrder, 0),
    create_errors: errors,
    timed_out: timedOut,
    // CPU per task done in the window: the system's process, and the Redis server it shares with nothing else.
    cpu_ms_per_task: +((cpuInWindow * 1000) / Math.max(1, inWindow.length)).toFixed(2),
    // The main thread alone (JavaScript runs there): busy near 100 % of the window, it is what bounds the system.
    main_thread_ms_per_task: +((mainCpuInWindow * 1000) / Math.max(1, inWindow.length)).toFixed(2),
    main_thread_busy_percent: Math.round((mainCpuInWindow * 100) / seconds),
    redis_cpu_ms_per_task: +((redisCpuInWindow * 1000) / Math.max(1, inWindow.length)).toFixed(2),
    p50_ms: Math.round(percentile(latencies, 50)),
    p99_ms: Math.round(percentile(latencies, 99)),
    create_to_first_event_p50_ms: Math.round(percentile(toFirstEvent, 50)),
    first_to_last_event_p50_ms: Math.round(percentile(steps, 50)),
    event_to_receipt_p50_ms: Math.round(percentile(receipts, 50)),
    event_to_receipt_p99_ms: Math.round(percentile(receipts, 99)),
    deliveries: statuses,
    // Jobs ever added to each BullMQ queue (its id counter): what went through Redis rather than in process.
    queue_jobs: jobs,
    load: [loadAtStart, load],
  };
}

const readLoad = () => +os.loadavg()[0].toFixed(2);

async function jobsAdded(url, prefix) {
  const r = new Redis(url);
  const keys = (await r.keys(`${prefix}*:id`)).sort();
  const counts = Object.fromEntries(
    await Promise.all(keys.map(async (k) => [k.slice(prefix.length + 1, -3), Number(await r.get(k))])),
  );
  r.disconnect();
  return counts;
}

async function deliveryStatuses(db) {
  const sql = 'SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status';
  let rows;
  if (db.kind === 'sqlite') rows = await sqliteQuery(db, sql);
  else {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    rows = (await c.query(sql)).rows;
    await c.end();
  }
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}
