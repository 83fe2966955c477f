import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { faultEnvironment, statusCounts } from '../support/fault-env.js';
import { eventually } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { recordFigures } from '../support/reliability.js';

let env: Awaited<ReturnType<typeof faultEnvironment>>;
afterAll(async () => env?.cleanup());

const AUTH = 'Bearer receiver-secret';

describe('restart with the wrong encryption key', () => {
  it('is refused in one line (another ENCRYPTION_KEY, or a new DATA_DIR); with the right key every pending webhook arrives', async () => {
    let up = false;
    // The receiver is down while Herald stops, so deliveries are pending (sealed headers and secrets in the database).
    // Its circuit stays closed: this test waits for every first attempt to reach it while it is down (the circuit
    // would hold the later ones, as it should, and outages.fault.ts tests that).
    env = await faultEnvironment({
      respond: () => (up ? { status: 200 } : { status: 503, body: 'maintenance' }),
      env: { CIRCUIT_FAILURES: '10000' },
    });
    const t0 = Date.now();
    const first = await spawnHerald(env.env);
    env.onCleanup(() => first.kill9());
    const TASKS = 100;
    // Half finish before the stop (their webhooks pending at the receiver), half are still generating.
    const ids = await env.submit(first.baseUrl, TASKS, (i) => ({
      webhook_headers: { Authorization: AUTH },
      webhook_events: ['completed'],
      simulate: { duration_ms: i % 2 ? 100 : 4_000 },
    }));
    await eventually(async () => (env.receiver.received.length >= TASKS / 2 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    await first.kill9();

    // Another key: refused before anything is touched, in one line on stderr, exit code 1.
    const wrong = await runCli(
      ['serve'],
      { ...env.env, ENCRYPTION_KEY: randomBytes(32).toString('base64'), PORT: '0' },
      60_000,
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^herald: ENCRYPTION_KEY is not the key the database .* DATA_DIR/),
    ]);
    // A new DATA_DIR beside the same database and no ENCRYPTION_KEY: refused too, and no key file is left there.
    const fresh = mkdtempSync(path.join(tmpdir(), 'herald-newdir-'));
    env.onCleanup(async () => rmSync(fresh, { recursive: true, force: true }));
    const newDir = await runCli(['serve'], { ...env.env, DATA_DIR: fresh, ENCRYPTION_KEY: '', PORT: '0' }, 60_000);
    expect(newDir.code).toBe(1);
    expect(newDir.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^herald: ENCRYPTION_KEY is not set and DATA_DIR .*no new key was saved/),
    ]);
    expect(existsSync(path.join(fresh, 'encryption.key'))).toBe(false);

    // The right key: every pending webhook arrives, with the caller's header opened from its sealed form.
    up = true;
    const upAt = Date.now();
    // Terminal webhooks the receiver answered with 200 (it answered 503 to everything before).
    const arrived = () =>
      env.receiver.received.filter((w) => w.at >= upAt && String(w.body?.webhook_type ?? '').endsWith('_completed'));
    const second = await spawnHerald(env.env);
    env.onCleanup(() => second.kill9());
    await eventually(
      async () => {
        const got = new Set(arrived().map((w) => w.body.task_id as string));
        return ids.every((id) => got.has(id)) ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    const counts = await statusCounts(second.baseUrl, env.headers);
    expect(counts).toEqual({ completed: TASKS });
    expect(arrived().every((w) => w.headers.authorization === AUTH)).toBe(true);
    // Every delivery succeeded: none ended failed for want of its key.
    const statuses = new Set<string>();
    for (const id of ids) {
      const res = await fetch(`${second.baseUrl}/v1/tasks/${id}/deliveries`, { headers: env.headers });
      for (const d of ((await res.json()) as { data: Array<{ status: string }> }).data) statuses.add(d.status);
    }
    expect([...statuses]).toEqual(['succeeded']);
    expect(env.duplicates().sameId).toBe(true);
    recordFigures(
      'restart with the wrong encryption key (another ENCRYPTION_KEY; a new DATA_DIR), then the right one',
      {
        tasks: TASKS,
        refused_starts: 2,
        terminal_webhooks_received: new Set(arrived().map((w) => w.body.task_id)).size,
        lost: TASKS - new Set(arrived().map((w) => w.body.task_id)).size,
        seconds: Math.round((Date.now() - t0) / 1000),
      },
    );
  });
});
