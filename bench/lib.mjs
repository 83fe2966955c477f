// Shared pieces of the benchmark: processes, a counting receiver, a private Redis, databases, percentiles.
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import sqlite3 from 'sqlite3';

// BENCH_HERALD_CLI: another build's cli.js (A/B runs of two builds in one worktree: copy dist/ to dist-a/ first).
export const CLI = path.resolve(process.env.BENCH_HERALD_CLI ?? 'dist/cli.js');
export const PG_ADMIN = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

/** CPU seconds a process has used so far (utime + stime from /proc): all its threads, or its main thread alone. */
export function cpuSecondsOf(pid, { mainThread = false } = {}) {
  return (
    readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8')
      .split(') ')[1]
      .split(' ')
      .slice(11, 13)
      .reduce((a, b) => a + Number(b), 0) / 100
  );
}

/**
 * POSTs one create to Herald over `agent`: resolves {status, taskId} (taskId on a 202), or {status: 0} when the
 * request fails. Every measure that creates tasks over HTTP goes through this one client.
 */
export function postCreate(agent, url, apiKey, body) {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      { method: 'POST', agent, headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            taskId: res.statusCode === 202 ? JSON.parse(Buffer.concat(chunks).toString()).task_id : undefined,
          }),
        );
      },
    );
    req.on('error', () => resolve({ status: 0 }));
    req.end(body);
  });
}

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** The receiver every measure posts to: keep-alive, answers 200 at once, counts and timestamps receipts. */
export async function startReceiver() {
  const state = { count: 0, first: 0, last: 0, onBody: null };
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const now = performance.timeOrigin + performance.now();
      state.count++;
      if (!state.first) state.first = now;
      state.last = now;
      if (state.onBody) state.onBody(Buffer.concat(chunks), now);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('OK');
    });
  });
  const port = await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
  return {
    url: `http://127.0.0.1:${port}/hook`,
    state,
    reset() {
      state.count = 0;
      state.first = 0;
      state.last = 0;
      state.onBody = null;
    },
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
  };
}

export async function startRedis() {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  children.add(child);
  await sleep(300);
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () => (child.kill('SIGKILL'), children.delete(child)),
  };
}

/** A fresh database: a temp SQLite file or a new PostgreSQL database. */
export async function createDatabase(kind, dataDir) {
  if (kind === 'sqlite')
    return { url: `sqlite:${path.join(dataDir, 'herald.sqlite')}`, kind, drop: async () => undefined };
  const name = `herald_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    kind,
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export function heraldEnv(db, redis, dataDir, extra = {}) {
  return {
    PATH: process.env.PATH,
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    BOOTSTRAP_API_KEY: 'hk_bench_0123456789abcdef0123456789',
    ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    RATE_LIMIT_PER_SECOND: '0',
    LOG_LEVEL: 'error',
    ...JSON.parse(process.env.BENCH_HERALD_ENV ?? '{}'),
    ...extra,
  };
}

/**
 * Starts `herald serve` and waits for it (HTTP roles: /health/live; worker: a short settle). `command` runs another
 * server the same way (a baseline answering GET /health/live).
 */
export async function startHerald(env, nodeArgs = [], command = [CLI, 'serve']) {
  const port = env.ROLE === 'worker' ? undefined : await freePort();
  const child = spawn(process.execPath, [...nodeArgs, ...command], {
    env: { ...env, ...(port ? { PORT: String(port) } : {}) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const base = port ? `http://127.0.0.1:${port}` : undefined;
  if (base)
    await until(async () => (await fetch(`${base}/health/live`).catch(() => null))?.ok, 30_000, `herald start\n${err}`);
  else await sleep(1_500);
  return {
    base,
    pid: child.pid,
    rssMb: () => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        return m ? Number(m[1]) / 1024 : 0;
      } catch {
        return 0;
      }
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([done, sleep(10_000).then(() => child.kill('SIGKILL'))]);
      children.delete(child);
    },
  };
}

export const PAYLOAD = JSON.stringify({
  task_id: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
  status: 'completed',
  webhook_type: 'video_generation_completed',
  timestamp: '2026-11-23T04:00:00.000Z',
  video_url: 'http://127.0.0.1:3000/v1/artifacts/01a2067a-85e7-772a-b5bb-a39c8118ce75-a1-0.mp4',
  generation_duration_seconds: 45.5,
  model: 'minimax-video',
  prompt: 'A serene mountain landscape with clouds, slow camera pan, golden hour light, cinematic, 4k, detailed',
  event_type: 'video_generation_completed',
  event_id: '01a2067a-b1f0-7c55-9e3d-0a6b7c8d9e10',
  sequence: 12,
  metadata: { order_id: 'A-1', customer: 'bench', tags: ['a', 'b', 'c'] },
});

/** Puts `n` due deliveries straight into the outbox (Herald stopped), as if n events had just been committed. */
export async function preloadOutbox(db, n, url, target = 'request', payload = PAYLOAD) {
  const now = Date.now();
  const rows = (tenantId) =>
    Array.from({ length: n }, () => {
      const id = randomUUID();
      return [
        id,
        tenantId,
        null,
        id,
        'task.completed',
        0,
        target,
        url,
        null,
        payload,
        'pending',
        0,
        '[0,60000]',
        now,
        null,
        now,
        now,
      ];
    });
  const sql =
    'INSERT INTO deliveries (id, tenant_id, task_id, event_id, event_type, sequence, target, url, headers_sealed, payload, status, attempts, schedule, next_attempt_at, dispatched_at, created_at, updated_at) VALUES ';
  if (db.kind === 'postgres') {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const tenantId = (await c.query('SELECT id FROM tenants LIMIT 1')).rows[0].id;
    const all = rows(tenantId);
    for (let i = 0; i < all.length; i += 1_000) {
      const chunk = all.slice(i, i + 1_000);
      const params = chunk.flat();
      const values = chunk
        .map((_, r) => `(${Array.from({ length: 17 }, (_, k) => `$${r * 17 + k + 1}`).join(',')})`)
        .join(',');
      await c.query(sql + values, params);
    }
    await c.end();
    return;
  }
  const file = db.url.slice('sqlite:'.length);
  const conn = new sqlite3.Database(file);
  const run = (q, p = []) => new Promise((res, rej) => conn.run(q, p, (e) => (e ? rej(e) : res())));
  const get = (q) => new Promise((res, rej) => conn.get(q, (e, r) => (e ? rej(e) : res(r))));
  const tenantId = (await get('SELECT id FROM tenants LIMIT 1')).id;
  const all = rows(tenantId);
  await run('BEGIN');
  for (let i = 0; i < all.length; i += 50) {
    const chunk = all.slice(i, i + 50);
    await run(sql + chunk.map(() => `(${Array(17).fill('?').join(',')})`).join(','), chunk.flat());
  }
  await run('COMMIT');
  await new Promise((r) => conn.close(r));
}

/** SQLite only: `n` more tenants with a key each (copying the first tenant's sealed secret), for the streams measure. */
export async function addTenants(db, n) {
  const conn = new sqlite3.Database(db.url.slice('sqlite:'.length));
  const run = (q, p = []) => new Promise((res, rej) => conn.run(q, p, (e) => (e ? rej(e) : res())));
  const get = (q) => new Promise((res, rej) => conn.get(q, (e, r) => (e ? rej(e) : res(r))));
  const { webhook_secret: secret } = await get('SELECT webhook_secret FROM tenants LIMIT 1');
  const now = Date.now();
  const tenants = [];
  await run('BEGIN');
  for (let i = 0; i < n; i++) {
    const tenantId = randomUUID();
    const key = `hk_bench_tenant_${i}_${randomBytes(12).toString('hex')}`;
    await run('INSERT INTO tenants (id, name, webhook_secret, event_cursor, created_at) VALUES (?, ?, ?, 0, ?)', [
      tenantId,
      `bench-${i}`,
      secret,
      now,
    ]);
    await run(
      'INSERT INTO api_keys (id, tenant_id, label, prefix, key_hash, created_at, revoked_at) VALUES (?, ?, NULL, ?, ?, ?, NULL)',
      [randomUUID(), tenantId, key.slice(0, 10), createHash('sha256').update(key).digest('hex'), now],
    );
    tenants.push({ tenantId, key });
  }
  await run('COMMIT');
  await new Promise((r) => conn.close(r));
  return tenants;
}

/** SQLite only: the rows of one query (the streams measure counts events per tenant with it). */
export async function sqliteQuery(db, sql, params = []) {
  const conn = new sqlite3.Database(db.url.slice('sqlite:'.length));
  const rows = await new Promise((res, rej) => conn.all(sql, params, (e, r) => (e ? rej(e) : res(r))));
  await new Promise((r) => conn.close(r));
  return rows;
}

export function tempDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-bench-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
