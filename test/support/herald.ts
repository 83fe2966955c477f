import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig, type HeraldConfig } from '../../src/config/config.js';
import { startHerald, type RunningHerald } from '../../src/serve.js';

export const PG_ADMIN_URL = process.env.HERALD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const testDb = (): 'sqlite' | 'postgres' => (process.env.HERALD_TEST_DB === 'postgres' ? 'postgres' : 'sqlite');

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh database for one test file: a temp SQLite file, or a new PostgreSQL database next to `test`. */
export async function createTestDatabase(
  dataDir: string,
  kind: 'sqlite' | 'postgres' = testDb(),
): Promise<TestDatabase> {
  if (kind === 'sqlite') return { url: `sqlite:${path.join(dataDir, 'herald.sqlite')}`, drop: async () => undefined };
  const name = `herald_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface TestHerald {
  baseUrl: string;
  apiKey: string;
  config: HeraldConfig;
  herald: RunningHerald;
  dataDir: string;
  /** fetch against Herald with the API key; JSON bodies are sent as JSON. */
  api(
    method: string,
    route: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; headers: Headers; body: any }>;
  stop(): Promise<void>;
}

/** Starts a whole Herald (role all) in this process on a free port, with its own database and queue prefix. */
export async function startTestHerald(
  env: Record<string, string> = {},
  options: { keepData?: TestHerald } = {},
): Promise<TestHerald> {
  const dataDir = options.keepData?.dataDir ?? mkdtempSync(path.join(tmpdir(), 'herald-test-'));
  const db = options.keepData ? undefined : await createTestDatabase(dataDir);
  const apiKey = options.keepData?.apiKey ?? `hk_test_${randomBytes(16).toString('hex')}`;
  const config = loadConfig({
    PORT: '0',
    DATA_DIR: dataDir,
    DATABASE_URL:
      options.keepData?.config.database.type === 'postgres'
        ? options.keepData.config.database.url
        : (db?.url ?? `sqlite:${path.join(dataDir, 'herald.sqlite')}`),
    QUEUE_PREFIX: options.keepData?.config.queuePrefix ?? `ht${randomBytes(4).toString('hex')}`,
    BOOTSTRAP_API_KEY: apiKey,
    LOG_LEVEL: 'error',
    SIMULATOR_DURATION_MS: '300',
    SWEEP_INTERVAL_MS: '200',
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8,::1/128',
    ...env,
  });
  const herald = await startHerald(config);
  const baseUrl = `http://127.0.0.1:${herald.port}`;
  config.publicBaseUrl = baseUrl;
  const api: TestHerald['api'] = async (method, route, body, headers = {}) => {
    const res = await fetch(baseUrl + route, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, body: parsed };
  };
  let dropped = false;
  const stop = async () => {
    await herald.close();
    if (!dropped && db) {
      dropped = true;
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  };
  return { baseUrl, apiKey, config, herald, dataDir, api, stop };
}

/** Polls until `check` returns a value (not undefined), within a bounded time. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  { timeoutMs = 10_000, intervalMs = 25 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
}
