import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { runWorker, type RunningWorker } from '../../src/worker-sdk/index.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

// Herald stopping while workers long-poll: every poll is answered {jobs: []} at once (never a 500 from a closed
// database), and a connection a client keeps open without finishing a request does not hold the shutdown.
const WORKER_TOKEN = `hw_test_${randomBytes(16).toString('hex')}`;
const ENV = { MODEL_ROUTES: 't-*=workers,*=simulator', BOOTSTRAP_WORKER_TOKEN: WORKER_TOKEN, LOG_LEVEL: 'error' };

/** Settles with 'stopped', or 'hung' when `ms` passes first (a bound for a broken shutdown, not a timing target). */
const within = (p: Promise<unknown>, ms: number) =>
  Promise.race([p.then(() => 'stopped' as const), new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms).unref())]);

let h: TestHerald | undefined;
let workers: RunningWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop({ graceMs: 100 })));
  workers = [];
  await h?.stop();
  h = undefined;
});

const online = async (herald: TestHerald, count: number) =>
  eventually(async () => {
    const res = await fetch(`${herald.baseUrl}/v1/workers`, { headers: { authorization: `Bearer ${herald.apiKey}` } });
    const body = (await res.json()) as { data?: unknown[] };
    return (body.data?.length ?? 0) >= count ? true : undefined;
  });

describe('Herald stopping with workers long-polling', () => {
  it('answers each waiting long poll {jobs: []} at once, and no worker request meets a 5xx', async () => {
    h = await startTestHerald(ENV);
    const herald = h;
    const problems: string[] = [];
    workers = Array.from({ length: 4 }, (_, i) =>
      runWorker({
        url: herald.baseUrl,
        token: WORKER_TOKEN,
        models: ['t-shutdown-*'],
        workerId: `w-shutdown-${i}`,
        waitSeconds: 60,
        backoff: { initialMs: 50, maxMs: 200 },
        handler: () => [{ url: 'https://cdn.example/x.png' }],
        log: (level, message) => {
          if (level !== 'info') problems.push(message);
        },
      }),
    );
    // A raw long poll too, to see its answer.
    const poll = fetch(`${herald.baseUrl}/v1/worker/leases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${WORKER_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ worker_id: 'w-raw', models: ['t-shutdown-raw'], wait_seconds: 60 }),
    });
    await online(herald, 5);
    await new Promise((r) => setTimeout(r, 200)); // every poll is in its wait
    expect(await within(herald.stop(), 15_000)).toBe('stopped');
    const answer = await poll;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ jobs: [] });
    await new Promise((r) => setTimeout(r, 300)); // the workers' next polls meet a closed port
    expect(problems.filter((m) => /\b5\d\d\b|SQLITE|MISUSE|handle is closed/i.test(m))).toEqual([]);
  });

  it('is not held by a connection that keeps a request unfinished, nor by an idle kept-alive one', async () => {
    h = await startTestHerald({ ...ENV, SHUTDOWN_GRACE_MS: '300' });
    const port = new URL(h.baseUrl).port;
    const open = (request: string) =>
      new Promise<net.Socket>((resolve, reject) => {
        const socket = net.connect(Number(port), '127.0.0.1', () => (socket.write(request), resolve(socket)));
        socket.on('error', reject);
      });
    // Idle: a request answered, the connection kept alive.
    const idle = await open(`GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
    await new Promise<void>((r) => idle.once('data', () => r()));
    // Unfinished: a long poll whose body never arrives in full (a client that gave up but kept its socket).
    const stuck = await open(
      `POST /v1/worker/leases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${WORKER_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"worker_id":`,
    );
    await new Promise((r) => setTimeout(r, 200));
    const closed = Promise.all(
      [idle, stuck].map((s) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())))),
    );
    expect(await within(h.stop(), 15_000)).toBe('stopped');
    h = undefined;
    expect(await within(closed, 5_000)).toBe('stopped');
  });
  it('is not held for SHUTDOWN_GRACE_MS by connections never used, as a worker leaves after aborting its long poll', async () => {
    h = await startTestHerald({ ...ENV, SHUTDOWN_GRACE_MS: '60000' });
    const herald = h;
    // The SDK's fetch opens spare connections once its long polls are aborted; a raw socket that sends nothing
    // stands for any such client.
    const worker = runWorker({
      url: herald.baseUrl,
      token: WORKER_TOKEN,
      models: ['t-unused-*'],
      workerId: 'w-unused',
      waitSeconds: 60,
      handler: () => [{ url: 'https://cdn.example/x.png' }],
      log: () => undefined,
    });
    await online(herald, 1);
    await worker.stop({ graceMs: 100 });
    const spare = await new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect(Number(new URL(herald.baseUrl).port), '127.0.0.1', () => resolve(socket));
      socket.on('error', reject);
    });
    const spareClosed = new Promise<void>((r) => spare.once('close', () => r()));
    // 15 s bounds a broken shutdown; the 60 s grace would be what holds it.
    expect(await within(herald.stop(), 15_000)).toBe('stopped');
    h = undefined;
    expect(await within(spareClosed, 5_000)).toBe('stopped');
  });
});
