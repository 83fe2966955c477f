import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase } from './herald.js';
import { startPrivateRedis } from './processes.js';
import { startReceiver, type Reply, type ReceivedWebhook } from './receiver.js';

/** A private Redis, a fresh database, a receiver and the env every Herald process of one fault test shares. */
export async function faultEnvironment(
  options: { respond?: (req: ReceivedWebhook, n: number) => Reply; env?: Record<string, string> } = {},
) {
  const cleanups: Array<() => Promise<unknown>> = [];
  const receiver = await startReceiver({ respond: options.respond });
  cleanups.push(() => receiver.close());
  const redis = await startPrivateRedis();
  cleanups.push(() => redis.stop());
  const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-fault-'));
  const db = await createTestDatabase(dataDir);
  cleanups.push(() => db.drop());
  const apiKey = `hk_fault_${randomBytes(12).toString('hex')}`;
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    REDIS_URL: redis.url,
    BOOTSTRAP_API_KEY: apiKey,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    SWEEP_INTERVAL_MS: '250',
    WEBHOOK_TIMEOUT_MS: '1000',
    WEBHOOK_RETRY_SCHEDULE: '0s,100ms,200ms,400ms,800ms,1s,2s,2s,2s,2s',
    RATE_LIMIT_PER_SECOND: '0',
    ...options.env,
  };
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  return {
    receiver,
    redis,
    env,
    apiKey,
    headers,
    onCleanup: (fn: () => Promise<unknown>) => cleanups.push(fn),
    cleanup: async () => {
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    },
    /** Submits `count` tasks, `parallel` at a time; returns their ids. */
    async submit(
      baseUrl: string,
      count: number,
      body: (i: number) => Record<string, unknown>,
      parallel = 25,
    ): Promise<string[]> {
      const ids: string[] = [];
      for (let i = 0; i < count; i += parallel) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(parallel, count - i) }, async (_, j) => {
            const n = i + j;
            const res = await fetch(`${baseUrl}/v1/${n % 2 ? 'images' : 'videos'}/generations/async`, {
              method: 'POST',
              headers,
              body: JSON.stringify({ model: 'm', prompt: `task ${n}`, webhook_url: receiver.url(), ...body(n) }),
            });
            if (res.status !== 202) throw new Error(`create answered ${res.status}: ${await res.text()}`);
            return ((await res.json()) as { task_id: string }).task_id;
          }),
        );
        ids.push(...batch);
      }
      return ids;
    },
    /** Task ids that received a terminal webhook. */
    finished(): Set<string> {
      return new Set(
        receiver.received
          .filter((w) => String(w.body?.webhook_type ?? '').endsWith('_completed'))
          .map((w) => w.body.task_id as string),
      );
    },
    /** Events delivered more than once, and whether every repeat kept its webhook-id. */
    duplicates(): { repeats: number; sameId: boolean } {
      const byEvent = new Map<string, { count: number; ids: Set<string> }>();
      for (const w of receiver.received) {
        const entry = byEvent.get(w.body?.event_id) ?? { count: 0, ids: new Set<string>() };
        entry.count++;
        entry.ids.add(String(w.headers['webhook-id']));
        byEvent.set(w.body?.event_id, entry);
      }
      let repeats = 0;
      let sameId = true;
      for (const e of byEvent.values()) {
        repeats += e.count - 1;
        if (e.ids.size !== 1) sameId = false;
      }
      return { repeats, sameId };
    },
  };
}

/** Counts tasks by status through the API (paging through GET /v1/tasks). */
export async function statusCounts(baseUrl: string, headers: Record<string, string>): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let cursor: string | null = null;
  for (let page = 0; page < 200; page++) {
    const res = await fetch(`${baseUrl}/v1/tasks?limit=100${cursor ? `&cursor=${cursor}` : ''}`, { headers });
    const body = (await res.json()) as { data: Array<{ status: string }>; next_cursor: string | null };
    for (const t of body.data) counts[t.status] = (counts[t.status] ?? 0) + 1;
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  return counts;
}
