// npm run bench -- --soak[=MINUTES] (default 30): a long steady run that shows whether Herald loses or leaks.
// One api and SOAK_WORKERS worker processes on PostgreSQL and a private Redis; tasks created through the API at a
// steady rate, each with a webhook_url; one receiver that fails 5 % of requests (Herald retries those). Every minute:
// RSS of each process, event → receipt p50/p99 (first arrival of each webhook), outbox lag and pending, Redis memory,
// database size and row counts, and the machine's 1-minute load average (the machine is shared: the load column
// tells Herald's drift from its neighbours'). A tiny RETENTION_DAYS keeps the tables bounded. Writes
// docs/images/soak.svg and the soak section of docs/BENCHMARKS.md when the run is 20 minutes or longer.
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createDatabase, heraldEnv, percentile, postCreate, sleep, startHerald, startRedis, tempDir } from './lib.mjs';

export async function soak(
  minutes,
  {
    rate = Number(process.env.SOAK_RATE ?? 200),
    workers = Number(process.env.SOAK_WORKERS ?? 2),
    failPercent = 5,
    write = minutes >= 20,
  } = {},
) {
  // ~2.9 min: tasks are purged well within the run, so the row counts show whether retention keeps up.
  const retentionDays = process.env.SOAK_RETENTION_DAYS ?? '0.002';
  const commit = execSync('git rev-parse --short HEAD').toString().trim();
  const log = (line) => process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

  // The receiver: fails failPercent % of requests at random, records the first arrival of each webhook (its
  // latency from the event's timestamp) and each task whose terminal webhook was answered 2xx.
  const delivered = new Set();
  const seen = new Set();
  let duplicates = 0;
  let failed = 0;
  let minuteLatencies = [];
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = performance.timeOrigin + performance.now();
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString());
      } catch {
        res.writeHead(400).end();
        return;
      }
      const id = req.headers['webhook-id'] ?? body.task_id;
      if (!seen.has(id)) {
        seen.add(id);
        minuteLatencies.push(at - Date.parse(body.timestamp));
      }
      if (Math.random() * 100 < failPercent) {
        failed++;
        res.writeHead(500, { 'content-length': '0' }).end();
        return;
      }
      if (delivered.has(body.task_id)) duplicates++;
      else delivered.add(body.task_id);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('OK');
    });
  });
  const receiverPort = await new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(server.address().port)),
  );
  const hookUrl = `http://127.0.0.1:${receiverPort}/hook`;

  const redis = await startRedis();
  const redisClient = new Redis(redis.url, { lazyConnect: false });
  const tmp = tempDir();
  const db = await createDatabase('postgres', tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, {
    QUEUE_PREFIX: '{soak}',
    RETENTION_DAYS: retentionDays,
    WEBHOOK_RETRY_SCHEDULE: '0s,1s,2s,5s,10s,30s',
    WEBHOOK_CONCURRENCY: '64',
    GENERATION_CONCURRENCY: '50',
  });
  const api = await startHerald({ ...env, ROLE: 'api' });
  const workerProcs = [];
  for (let i = 0; i < workers; i++) workerProcs.push(await startHerald({ ...env, ROLE: 'worker' }));
  const procs = [{ name: 'api', p: api }, ...workerProcs.map((p, i) => ({ name: `worker${i + 1}`, p }))];
  const pgClient = new pg.Client({ connectionString: db.url });
  await pgClient.connect();
  // A PostgreSQL tuned for tests may run with autovacuum off: deleted rows are then never reclaimed and the
  // database grows however bounded the tables are. The soak then vacuums each minute, as autovacuum would.
  const autovacuum = (await pgClient.query('SHOW autovacuum')).rows[0].autovacuum;
  log(
    `api ${api.base}, ${workers} workers, ${rate} tasks/s for ${minutes} min, RETENTION_DAYS=${retentionDays}, receiver fails ${failPercent} %`,
  );

  // Outbox lag from the api's /metrics every 10 s; the minute's row shows the worst sample.
  const gauge = (text, name) => Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  let lagMax = 0;
  let pendingMax = 0;
  const scrape = async () => {
    const text = await fetch(`${api.base}/metrics`)
      .then((r) => r.text())
      .catch(() => '');
    lagMax = Math.max(lagMax, gauge(text, 'herald_outbox_lag_seconds') || 0);
    pendingMax = Math.max(pendingMax, gauge(text, 'herald_outbox_pending') || 0);
  };
  const scraper = setInterval(() => void scrape(), 10_000);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const accepted = new Set();
  let refused = 0;
  let errors = 0;
  let skipped = 0;
  let inflight = 0;
  let minuteCreated = 0;
  const body = JSON.stringify({
    model: 'soak',
    prompt: 'p',
    webhook_url: hookUrl,
    webhook_events: ['completed', 'failed'],
    simulate: { duration_ms: 0 },
  });
  const post = () => {
    inflight++;
    void postCreate(agent, `${api.base}/v1/images/generations/async`, env.BOOTSTRAP_API_KEY, body).then(
      ({ status, taskId }) => {
        inflight--;
        if (status === 0) errors++;
        else if (taskId) {
          accepted.add(taskId);
          minuteCreated++;
        } else refused++;
      },
    );
  };

  const rows = [];
  const sample = async (minute) => {
    const latencies = minuteLatencies.sort((a, b) => a - b);
    minuteLatencies = [];
    const mem = await redisClient.info('memory');
    const size = await pgClient.query(
      'SELECT pg_database_size(current_database()) AS bytes, (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM task_events) AS events, (SELECT count(*) FROM deliveries) AS deliveries, (SELECT count(*) FROM delivery_attempts) AS attempts',
    );
    const r = size.rows[0];
    const row = {
      minute,
      created: minuteCreated,
      receipts: latencies.length,
      p50_ms: Math.round(percentile(latencies, 50)),
      p99_ms: Math.round(percentile(latencies, 99)),
      rss_mb: Object.fromEntries(procs.map(({ name, p }) => [name, Math.round(p.rssMb())])),
      outbox_lag_s: +lagMax.toFixed(1),
      outbox_pending: pendingMax,
      redis_mb: +(Number(/used_memory:(\d+)/.exec(mem)?.[1] ?? 0) / 2 ** 20).toFixed(1),
      db_mb: Math.round(Number(r.bytes) / 2 ** 20),
      rows: {
        tasks: Number(r.tasks),
        events: Number(r.events),
        deliveries: Number(r.deliveries),
        attempts: Number(r.attempts),
      },
      load1: +os.loadavg()[0].toFixed(2),
    };
    if (autovacuum === 'off') await pgClient.query('VACUUM tasks, task_events, deliveries, delivery_attempts');
    minuteCreated = 0;
    lagMax = 0;
    pendingMax = 0;
    rows.push(row);
    process.stdout.write(JSON.stringify({ measure: 'soak_minute', ...row }) + '\n');
  };

  // Steady offered rate, scheduled by due time; a create is skipped (and counted) only if 2,000 are already on the
  // wire, so a stalled Herald shows in the numbers instead of growing the load generator without bound.
  const t0 = Date.now();
  const end = t0 + minutes * 60_000;
  let nextMinute = t0 + 60_000;
  let i = 0;
  while (Date.now() < end) {
    const due = t0 + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    if (inflight >= 2_000) skipped++;
    else post();
    i++;
    if (Date.now() >= nextMinute) {
      await sample(Math.round((nextMinute - t0) / 60_000));
      nextMinute += 60_000;
    }
  }
  // Drain: every accepted task's terminal webhook answered 2xx, or SOAK_DRAIN_MINUTES (10) of waiting.
  const drainStarted = Date.now();
  const drainUntil = drainStarted + Number(process.env.SOAK_DRAIN_MINUTES ?? 10) * 60_000;
  while ((inflight > 0 || [...accepted].some((id) => !delivered.has(id))) && Date.now() < drainUntil)
    await sleep(1_000);
  const drainSeconds = Math.round((Date.now() - drainStarted) / 1000);
  await scrape();
  // What is still undelivered is lost only if the database no longer holds work for it: its task row is gone
  // (purged after finishing) or finished with no delivery left to send. Otherwise Herald is still behind.
  const undelivered = [...accepted].filter((id) => !delivered.has(id));
  const pendingWork = undelivered.length
    ? (
        await pgClient.query(
          `SELECT t.id::text AS id, t.status, EXISTS (SELECT 1 FROM deliveries d WHERE d.task_id = t.id AND d.status IN ('pending', 'sending')) AS sending
           FROM tasks t WHERE t.id::text = ANY($1::text[])`,
          [undelivered],
        )
      ).rows
    : [];
  const stillWorking = pendingWork.filter(
    (r) => !['completed', 'failed', 'cancelled', 'timedout'].includes(r.status) || r.sending,
  );
  const undeliveredStatus = {};
  for (const r of pendingWork) undeliveredStatus[r.status] = (undeliveredStatus[r.status] ?? 0) + 1;
  const lost = undelivered.filter((id) => !stillWorking.some((r) => r.id === id));
  clearInterval(scraper);
  const summary = {
    measure: 'soak',
    minutes,
    offered_per_s: rate,
    workers,
    retention_days: Number(retentionDays),
    accepted: accepted.size,
    refused,
    errors,
    skipped,
    delivered: delivered.size,
    lost: lost.length,
    undelivered_at_end: undelivered.length,
    undelivered_by_task_status: undeliveredStatus,
    drain_s: drainSeconds,
    duplicates,
    receiver_fail_percent: failPercent,
    autovacuum,
    receiver_failures: failed,
    commit,
    flat: flatness(rows),
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  if (lost.length) log(`lost, first ones: ${lost.slice(0, 5).join(', ')}`);

  for (const { p } of procs.reverse()) await p.stop();
  agent.destroy();
  await pgClient.end();
  redisClient.disconnect();
  await db.drop();
  redis.stop();
  server.closeAllConnections();
  server.close();
  tmp.remove();

  if (write) {
    mkdirSync('docs/images', { recursive: true });
    writeFileSync('docs/images/soak.svg', plot(rows, procs.map((p) => p.name).reverse()));
    writeSection('docs/BENCHMARKS.md', section(rows, summary));
  }
  return summary;
}

/** Last 10 minutes against minutes 5–15 (or the run's second quarter against its last for short runs), means. */
export function flatness(rows) {
  if (rows.length < 4) return null;
  const [early, late] =
    rows.length >= 25
      ? [rows.filter((r) => r.minute > 5 && r.minute <= 15), rows.slice(-10)]
      : [
          rows.slice(Math.floor(rows.length / 4), Math.floor(rows.length / 2)),
          rows.slice(-Math.floor(rows.length / 4)),
        ];
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const change = (f) => +((mean(late.map(f)) / mean(early.map(f)) - 1) * 100).toFixed(1);
  const out = { p99_change_percent: change((r) => r.p99_ms), load_change_percent: change((r) => r.load1) };
  for (const name of Object.keys(rows[0].rss_mb)) out[`rss_${name}_change_percent`] = change((r) => r.rss_mb[name]);
  out.within_10_percent = Object.entries(out).every(([k, v]) => k.startsWith('load') || Math.abs(v) <= 10);
  // Leak or load: a leak shows as RSS rising steadily (a least-squares slope, MB per minute, from minute 5 on)
  // whatever the load; the machine's load shows as p99 moving with the load average (their correlation).
  const steady = rows.filter((r) => r.minute > 5);
  if (steady.length >= 3) {
    for (const name of Object.keys(rows[0].rss_mb))
      out[`rss_${name}_mb_per_min`] = +slope(steady.map((r) => [r.minute, r.rss_mb[name]])).toFixed(2);
    out.p99_load_correlation = +correlation(steady.map((r) => [r.load1, r.p99_ms])).toFixed(2);
  }
  return out;
}

function slope(points) {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx ? sxy / sxx : 0;
}

function correlation(points) {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const syy = points.reduce((a, [, y]) => a + (y - my) ** 2, 0);
  return sxx && syy ? sxy / Math.sqrt(sxx * syy) : 0;
}

/** The plot and the BENCHMARKS.md section from a run's JSON lines (its stdout), e.g. after changing the layout. */
export function render(lines) {
  const parsed = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const rows = parsed.filter((r) => r.measure === 'soak_minute').map(({ measure: _measure, ...r }) => r);
  const summary = parsed.find((r) => r.measure === 'soak');
  summary.flat = flatness(rows);
  mkdirSync('docs/images', { recursive: true });
  writeFileSync('docs/images/soak.svg', plot(rows, Object.keys(rows[0].rss_mb)));
  writeSection('docs/BENCHMARKS.md', section(rows, summary));
  return summary;
}

// node bench/soak.mjs --render=FILE: re-renders docs from a saved run.
const renderArg = process.argv.find((a) => a.startsWith('--render='));
if (renderArg && import.meta.url === `file://${process.argv[1]}`)
  console.log(JSON.stringify(render(readFileSync(renderArg.slice(9), 'utf8').split('\n')).flat));

/** A small hand-written SVG: RSS per process (MB) above, p50/p99 (ms) and the load average below, per minute. */
export function plot(rows, names) {
  const W = 720;
  const H = 200;
  const L = 50;
  const R = 50;
  const colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd'];
  const x = (m) => L + ((m - 1) / Math.max(1, rows.length - 1)) * (W - L - R);
  const panel = (top, title, series, unit, right) => {
    const max = Math.max(1, ...series.flatMap((s) => s.values)) * 1.1;
    const y = (v) => top + H - (v / max) * H;
    const rmax = right ? Math.max(1, ...right.values) * 1.1 : 1;
    const ry = (v) => top + H - (v / rmax) * H;
    const line = (values, f) =>
      values.map((v, i) => `${i ? 'L' : 'M'}${x(rows[i].minute).toFixed(1)},${f(v).toFixed(1)}`).join(' ');
    const ticks = [0, 0.25, 0.5, 0.75, 1]
      .map(
        (t) =>
          `<line x1="${L}" x2="${W - R}" y1="${y(t * max)}" y2="${y(t * max)}" stroke="#eee"/><text x="${L - 6}" y="${y(t * max) + 4}" text-anchor="end">${Math.round(t * max)}</text>`,
      )
      .join('');
    const legend = [...series, ...(right ? [right] : [])]
      .map((s, i) => `<text x="${L + 10 + i * 130}" y="${top + H + 30}" fill="${s.color}">${s.name}</text>`)
      .join('');
    return `<text x="${L}" y="${top - 8}" font-weight="bold">${title} (${unit})</text>${ticks}
${series.map((s) => `<path d="${line(s.values, y)}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`).join('\n')}
${right ? `<path d="${line(right.values, ry)}" fill="none" stroke="${right.color}" stroke-dasharray="4 3"/><text x="${W - R + 6}" y="${ry(rmax / 1.1) + 4}">${(rmax / 1.1).toFixed(1)}</text><text x="${W - R + 6}" y="${top + H + 4}">0</text>` : ''}
<line x1="${L}" x2="${W - R}" y1="${top + H}" y2="${top + H}" stroke="#999"/>${legend}`;
  };
  const rss = names.map((n, i) => ({
    name: `RSS ${n}`,
    color: colors[i % colors.length],
    values: rows.map((r) => r.rss_mb[n]),
  }));
  const lat = [
    { name: 'p50', color: '#2ca02c', values: rows.map((r) => r.p50_ms) },
    { name: 'p99', color: '#d62728', values: rows.map((r) => r.p99_ms) },
  ];
  const load = { name: 'load avg (right)', color: '#7f7f7f', values: rows.map((r) => r.load1) };
  const xTicks = rows
    .filter((r) => r.minute % 5 === 0 || r.minute === 1)
    .map((r) => `<text x="${x(r.minute)}" y="${2 * H + 104}" text-anchor="middle">${r.minute}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H + 135}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
${panel(30, 'RSS per process', rss, 'MB')}
${panel(H + 90, 'Event → receipt, first arrival', lat, 'ms', load)}
${xTicks}<text x="${W - R + 6}" y="${2 * H + 104}">minute</text>
</svg>
`;
}

function section(rows, s) {
  const cpu = os.cpus();
  const names = Object.keys(rows[0]?.rss_mb ?? {});
  const f = s.flat ?? {};
  const table = rows
    .map(
      (r) =>
        `| ${r.minute} | ${r.created.toLocaleString('en-US')} | ${names.map((n) => r.rss_mb[n]).join(' · ')} | ${r.p50_ms} | ${r.p99_ms} | ${r.outbox_lag_s} | ${r.outbox_pending} | ${r.redis_mb} | ${r.db_mb} | ${r.rows.tasks.toLocaleString('en-US')} | ${r.load1} |`,
    )
    .join('\n');
  return `Measured by \`npm run bench -- --soak=${s.minutes}\` (bench/soak.mjs) on ${cpu.length} × ${cpu[0]?.model.trim()}, Node ${process.version},
commit \`${s.commit}\`, ending ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. One api and ${s.workers} worker processes on PostgreSQL and
a private \`redis-server\`; ${s.offered_per_s} tasks/s created through the API (each completes at once and sends its terminal
webhook); one receiver failing ${s.receiver_fail_percent} % of requests at random (WEBHOOK_RETRY_SCHEDULE=0s,1s,2s,5s,10s,30s);
RETENTION_DAYS=${s.retention_days} (≈ ${Math.round(s.retention_days * 1440 * 10) / 10} min). The load generator, the receiver, PostgreSQL and Redis share the
machine's cores with Herald, and other jobs ran on it: read the latency columns next to the load column.

![RSS per process and event → receipt latency per minute](images/soak.svg)

| result | value |
|---|---|
| accepted · refused (non-202) · skipped by the load generator | ${s.accepted.toLocaleString('en-US')} · ${s.refused} · ${s.skipped} |
| terminal webhooks answered 2xx · **lost** | ${s.delivered.toLocaleString('en-US')} · **${s.lost}** |
| drain after the last create · still undelivered then (by task status; not lost: the database holds their work) | ${s.drain_s} s · ${s.undelivered_at_end - s.lost} ${JSON.stringify(s.undelivered_by_task_status)} |
| receiver failures (retried) · duplicates (2xx twice) | ${s.receiver_failures.toLocaleString('en-US')} · ${s.duplicates} |
| last 10 min vs minutes 5–15: RSS ${names.join(' · ')} | ${names.map((n) => `${f[`rss_${n}_change_percent`]} %`).join(' · ')} |
| last 10 min vs minutes 5–15: p99 · load average | ${f.p99_change_percent} % · ${f.load_change_percent} % |
| PostgreSQL autovacuum (when off, the soak vacuums the busy tables each minute) | ${s.autovacuum ?? 'not recorded'} |
| flat (RSS and p99 within 10 %) | ${f.within_10_percent ? 'yes' : '**no**'} |
| RSS trend from minute 5 (least squares): ${names.join(' · ')} | ${names.map((n) => `${f[`rss_${n}_mb_per_min`]} MB/min`).join(' · ')} |
| correlation of p99 with the load average (minute 5 on) | ${f.p99_load_correlation} |

| min | created | RSS MB (${names.join(' · ')}) | p50 ms | p99 ms | outbox lag s | pending | Redis MB | DB MB | task rows | load 1m |
|---|---|---|---|---|---|---|---|---|---|---|
${table}

\`\`\`
${JSON.stringify(s)}
\`\`\``;
}

/** Replaces the generated soak block of docs/BENCHMARKS.md (its own markers), keeping everything around it. */
function writeSection(file, generated) {
  const START = '<!-- soak:start (written by npm run bench -- --soak) -->';
  const END = '<!-- soak:end -->';
  const block = `${START}\n${generated}\n${END}`;
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  writeFileSync(
    file,
    old.includes(START) && old.includes(END)
      ? old.slice(0, old.indexOf(START)) + block + old.slice(old.indexOf(END) + END.length)
      : `${old.trimEnd()}\n\n## Soak\n\n${block}\n`,
  );
}
