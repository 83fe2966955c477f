import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { runCli } from '../support/cli.js';
import { createTestDatabase, eventually, testDb } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';

// The API and the worker run as separate processes (ROLE=api, ROLE=worker) on one database, on SQLite and on
// PostgreSQL: events are written in the worker and streamed from the API, across the event bus.

interface WireEvent {
  id: string;
  task_id: string;
  sequence: number;
  cursor: string;
  type: string;
}

const cleanups: Array<() => Promise<unknown>> = [];
let env: Record<string, string>;
let api: Awaited<ReturnType<typeof spawnHerald>>;
let mainKey: string;
let workerToken: string;

async function createKey(tenant: string): Promise<{ id: string; key: string }> {
  const created = await runCli(['keys', 'create', '--tenant', tenant], env);
  expect(created.code, created.stderr).toBe(0);
  return { id: created.stdout.match(/Created key (\S+)/)![1], key: created.stdout.trim().split('\n').at(-1)! };
}

function call(key: string, method: string, route: string, body?: unknown) {
  return fetch(api.baseUrl + route, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

async function createTasks(key: string, n: number, durationMs = 150): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, n - i) }, async (_, j) => {
        const res = await call(key, 'POST', `/v1/${(i + j) % 2 ? 'images' : 'videos'}/generations/async`, {
          model: 'm',
          prompt: `p${i + j}`,
          simulate: { duration_ms: durationMs },
        });
        expect(res.status).toBe(202);
        return ((await res.json()) as { task_id: string }).task_id;
      }),
    );
    ids.push(...batch);
  }
  return ids;
}

/** Every event of the tenant through GET /v1/events, page by page. */
async function allEvents(key: string, query = ''): Promise<WireEvent[]> {
  const out: WireEvent[] = [];
  let after = '';
  for (;;) {
    const res = await call(key, 'GET', `/v1/events?limit=1000${query}${after ? `&after=${after}` : ''}`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as { data: WireEvent[]; next_cursor: string | null };
    out.push(...page.data);
    if (!page.next_cursor) return out;
    after = page.next_cursor;
  }
}

async function allTerminal(key: string, ids: string[]): Promise<void> {
  await eventually(
    async () => {
      const events = await allEvents(key, '&types=task.completed,task.failed,task.cancelled');
      const done = new Set(events.filter((e) => ids.includes(e.task_id)).map((e) => e.task_id));
      return done.size === ids.length ? true : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250 },
  );
}

/** A WebSocket client that keeps every message it gets. */
async function openWs(options: { key?: string; header?: boolean; base?: string } = {}) {
  const ws = new WebSocket(
    (options.base ?? api.baseUrl).replace('http', 'ws') + '/v1/events/ws',
    options.header === false || !options.key ? {} : { headers: { authorization: `Bearer ${options.key}` } },
  );
  const messages: any[] = [];
  let closed: { code: number; reason: string } | undefined;
  ws.on('message', (m) => messages.push(JSON.parse(String(m))));
  ws.on('close', (code, reason) => (closed = { code, reason: String(reason) }));
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) =>
      reject(Object.assign(new Error(`upgrade answered ${res.statusCode}`), { status: res.statusCode })),
    );
  });
  return {
    ws,
    messages,
    events: () => messages.filter((m) => m.type === 'event') as Array<{ cursor: string; event: WireEvent }>,
    closed: () => closed,
    send: (m: unknown) => ws.send(JSON.stringify(m)),
    next: (type: string) => eventually(async () => messages.find((m) => m.type === type)),
  };
}

/** An SSE reader over a raw fetch body: frames parsed as they come. */
async function openSse(key: string, query = '', headers: Record<string, string> = {}, base = api.baseUrl) {
  const controller = new AbortController();
  const res = await fetch(`${base}/v1/events/stream${query}`, {
    headers: { authorization: `Bearer ${key}`, ...headers },
    signal: controller.signal,
  });
  const frames: Array<{ id?: string; event?: string; data?: any; comment?: string }> = [];
  let ended = false;
  if (res.ok) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of res.body!) {
          buffer += decoder.decode(chunk, { stream: true });
          let at: number;
          while ((at = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, at);
            buffer = buffer.slice(at + 2);
            const frame: (typeof frames)[number] = {};
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) frame.comment = line.slice(1).trim();
              else if (line.startsWith('id: ')) frame.id = line.slice(4);
              else if (line.startsWith('event: ')) frame.event = line.slice(7);
              else if (line.startsWith('data: ')) frame.data = JSON.parse(line.slice(6));
            }
            frames.push(frame);
          }
        }
      } catch {
        /* aborted */
      }
      ended = true;
    })();
  }
  return {
    res,
    frames,
    events: () => frames.filter((f) => f.id).map((f) => ({ cursor: f.id!, event: f.data as WireEvent })),
    ended: () => ended,
    close: () => controller.abort(),
  };
}

function expectExactlyOnceInOrder(received: Array<{ cursor: string; event: WireEvent }>, expected: WireEvent[]) {
  const cursors = received.map((r) => r.cursor);
  for (let i = 1; i < cursors.length; i++)
    expect(cursors[i] > cursors[i - 1], `cursor ${cursors[i]} after ${cursors[i - 1]}`).toBe(true);
  for (const r of received) expect(r.event.cursor).toBe(r.cursor);
  expect(received.map((r) => r.event.id)).toEqual(expected.map((e) => e.id));
}

beforeAll(async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-streams-'));
  const db = await createTestDatabase(dataDir);
  cleanups.push(() => db.drop());
  mainKey = `hk_streams_${randomBytes(12).toString('hex')}`;
  workerToken = `hw_streams_${randomBytes(12).toString('hex')}`;
  env = {
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    QUEUE_PREFIX: `hs${randomBytes(3).toString('hex')}`,
    BOOTSTRAP_API_KEY: mainKey,
    BOOTSTRAP_WORKER_TOKEN: workerToken,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    SWEEP_INTERVAL_MS: '200',
    GENERATION_CONCURRENCY: '50',
    SSE_HEARTBEAT_MS: '2000',
    STREAM_MAX_CONNECTIONS_PER_KEY: '3',
    STREAM_BUFFER_LIMIT_BYTES: '65536',
    RATE_LIMIT_PER_SECOND: '0',
  };
  api = await spawnHerald({ ...env, ROLE: 'api' });
  cleanups.push(() => api.kill9());
  const worker = await spawnHerald({ ...env, ROLE: 'worker' });
  cleanups.push(() => worker.kill9());
}, 90_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe(`tenant-wide streams (${testDb()}, api and worker as separate processes)`, () => {
  it(
    'follows 200 tasks over one WebSocket and one SSE connection: every event exactly once, in cursor order',
    { timeout: 150_000 },
    async () => {
      const { key } = await createKey(`t200${randomBytes(3).toString('hex')}`);
      const ws = await openWs({ key });
      ws.send({ type: 'subscribe', task_ids: '*' });
      const subscribed = await ws.next('subscribed');
      expect(subscribed).toMatchObject({ task_ids: '*', types: null });
      const sse = await openSse(key, '?after=0');
      expect(sse.res.status).toBe(200);
      expect(sse.res.headers.get('content-type')).toContain('text/event-stream');
      await eventually(async () => (sse.frames.length > 0 ? true : undefined));

      const ids = await createTasks(key, 200);
      await allTerminal(key, ids);
      const expected = await allEvents(key);
      expect(expected.length).toBeGreaterThanOrEqual(200 * 3);
      await eventually(
        async () => {
          if (ws.events().length >= expected.length && sse.events().length >= expected.length) return true;
          throw new Error(
            `expected ${expected.length}, ws ${ws.events().length} (closed ${JSON.stringify(ws.closed())}), sse ${sse.events().length} (ended ${sse.ended()})`,
          );
        },
        { timeoutMs: 20_000 },
      );
      expectExactlyOnceInOrder(ws.events(), expected);
      expectExactlyOnceInOrder(sse.events(), expected);
      // Heartbeats keep the SSE stream open past every task's terminal event.
      const before = sse.frames.filter((f) => f.comment?.startsWith('heartbeat')).length;
      await eventually(async () =>
        sse.frames.filter((f) => f.comment?.startsWith('heartbeat')).length > before ? true : undefined,
      );
      expect(sse.ended()).toBe(false);
      // The per-task route shows the same cursors.
      const one = (await (await call(key, 'GET', `/v1/tasks/${ids[0]}/events`)).json()) as { data: WireEvent[] };
      expect(one.data.map((e) => e.cursor)).toEqual(expected.filter((e) => e.task_id === ids[0]).map((e) => e.cursor));
      ws.ws.close();
      sse.close();
    },
  );

  it('sends each event once, in cursor order, when a connection subscribes again with an earlier after', async () => {
    const { key } = await createKey(`tre${randomBytes(3).toString('hex')}`);
    const [x, y] = await createTasks(key, 2, 0);
    await allTerminal(key, [x, y]);
    const ws = await openWs({ key });
    ws.send({ type: 'subscribe', task_ids: [x], after: '0' });
    await eventually(async () => (ws.events().some((e) => e.event.type === 'task.completed') ? true : undefined));
    ws.send({ type: 'subscribe', task_ids: [y], after: '0' });
    ws.send({ type: 'ping' });
    await ws.next('pong');
    const cursors = ws.events().map((e) => e.cursor);
    expect(cursors).toEqual([...new Set(cursors)].sort());
    expect(ws.events().filter((e) => e.event.task_id === x)).toHaveLength(3);
    ws.ws.close();
  });

  it(
    'resumes after a disconnect mid-run from the last cursor, with nothing missing or repeated',
    { timeout: 120_000 },
    async () => {
      const { key } = await createKey(`tres${randomBytes(3).toString('hex')}`);
      let ws = await openWs({ key });
      ws.send({ type: 'subscribe', task_ids: '*' });
      await ws.next('subscribed');
      let sse = await openSse(key, '?after=0');
      const ids = await createTasks(key, 60, 600);
      await eventually(async () => (ws.events().length >= 40 && sse.events().length >= 40 ? true : undefined), {
        timeoutMs: 30_000,
      });
      ws.ws.terminate();
      sse.close();
      const wsFirst = ws.events();
      const sseFirst = sse.events();
      // Events go on while both are away.
      await eventually(
        async () => ((await allEvents(key)).length > Math.max(wsFirst.length, sseFirst.length) + 20 ? true : undefined),
        { timeoutMs: 30_000 },
      );

      ws = await openWs({ key });
      ws.send({ type: 'subscribe', task_ids: '*', after: wsFirst.at(-1)!.cursor });
      sse = await openSse(key, '', { 'last-event-id': sseFirst.at(-1)!.cursor });
      await allTerminal(key, ids);
      const expected = await allEvents(key);
      await eventually(
        async () =>
          wsFirst.length + ws.events().length >= expected.length &&
          sseFirst.length + sse.events().length >= expected.length
            ? true
            : undefined,
        { timeoutMs: 20_000 },
      );
      expectExactlyOnceInOrder([...wsFirst, ...ws.events()], expected);
      expectExactlyOnceInOrder([...sseFirst, ...sse.events()], expected);
      ws.ws.close();
      sse.close();
    },
  );

  it(
    'drops a reader that stops reading (close 1008 / SSE comment and close) instead of buffering for it',
    { timeout: 180_000 },
    async () => {
      const { key } = await createKey(`tslow${randomBytes(3).toString('hex')}`);
      // History to catch up on, more than the kernel's socket buffers (up to 4 MB each) take without the client
      // reading: instant tasks whose completed event carries ten results with a 4,000-character revised prompt each
      // (~40 kB), 300 of them (~12 MB), rather than thousands of small events that take minutes to make.
      const ids: string[] = [];
      for (let i = 0; i < 300; i += 25) {
        const made = await Promise.all(
          Array.from({ length: 25 }, async (_, j) => {
            const res = await call(key, 'POST', '/v1/images/generations/async', {
              model: 'm',
              prompt: `${i + j} ${'x'.repeat(3_990)}`,
              n: 10,
              simulate: { duration_ms: 0 },
            });
            expect(res.status).toBe(202);
            return ((await res.json()) as { task_id: string }).task_id;
          }),
        );
        ids.push(...made);
      }
      await allTerminal(key, ids);
      const total = (await allEvents(key)).length;
      const metric = async () => {
        const text = await (await fetch(`${api.baseUrl}/metrics`)).text();
        return Number(/herald_stream_closed_total\{reason="slow"\} (\d+)/.exec(text)?.[1] ?? 0);
      };
      const before = await metric();

      const ws = await openWs({ key });
      const wsSocket = (ws.ws as unknown as { _socket: net.Socket })._socket;
      wsSocket.pause();
      ws.send({ type: 'subscribe', task_ids: '*', after: '0' });
      // A raw SSE request whose socket is not read from.
      const socket = net.connect(api.port, '127.0.0.1');
      await new Promise((r) => socket.once('connect', r));
      socket.write(`GET /v1/events/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${key}\r\n\r\n`);
      socket.pause();
      await eventually(async () => ((await metric()) >= before + 2 ? true : undefined), { timeoutMs: 30_000 });

      // Once read again, each shows how it was dropped, and the stream is over before the history is.
      let text = '';
      socket.on('data', (d) => (text += d));
      const sseEnded = new Promise((r) => socket.once('close', r));
      socket.resume();
      wsSocket.resume();
      await sseEnded;
      expect(text).toContain(': dropped: the client did not read fast enough');
      expect(text.split('\nid: ').length - 1).toBeLessThan(total);
      await eventually(async () => ws.closed());
      // The socket may be cut before the close frame is read; when it is read, it says why.
      if (ws.closed()!.code !== 1006) expect(ws.closed()!.code).toBe(1008);
      expect(ws.events().length).toBeLessThan(total);
    },
  );

  it('authenticates by header or by a first message, and refuses anything else', async () => {
    await expect(openWs({ key: 'hk_not_a_key_at_all_000000' })).rejects.toMatchObject({ status: 401 });
    // A worker token is the wrong kind of credential here, as on every tenant route.
    await expect(openWs({ key: workerToken })).rejects.toMatchObject({ status: 403 });
    const notJson = await openWs();
    notJson.ws.send('hello');
    expect(await notJson.next('error')).toMatchObject({ code: 'invalid_message' });
    await eventually(async () => notJson.closed());
    expect(notJson.closed()!.code).toBe(1008);
    const byMessage = await openWs();
    byMessage.send({ type: 'auth', api_key: mainKey });
    byMessage.send({ type: 'subscribe', task_ids: '*', types: ['task.completed'] });
    byMessage.send({ type: 'ping' });
    expect(await byMessage.next('subscribed')).toMatchObject({ types: ['task.completed'] });
    await byMessage.next('pong');
    const [id] = await createTasks(mainKey, 1);
    const completed = await eventually(async () => byMessage.events().find((e) => e.event.task_id === id));
    expect(completed.event.type).toBe('task.completed');
    expect(byMessage.events().every((e) => e.event.type === 'task.completed')).toBe(true);
    byMessage.ws.close();

    const noAuth = await openWs();
    noAuth.send({ type: 'subscribe', task_ids: '*' });
    expect(await noAuth.next('error')).toMatchObject({ code: 'unauthorized' });
    await eventually(async () => noAuth.closed());
    expect(noAuth.closed()!.code).toBe(1008);

    const badKey = await openWs();
    badKey.send({ type: 'auth', api_key: 'hk_wrong' });
    expect(await badKey.next('error')).toMatchObject({ code: 'unauthorized' });
    await eventually(async () => badKey.closed());

    const workerKey = await openWs();
    workerKey.send({ type: 'auth', api_key: workerToken });
    expect(await workerKey.next('error')).toMatchObject({ code: 'forbidden' });
    await eventually(async () => workerKey.closed());
    expect(workerKey.closed()!.code).toBe(1008);

    expect((await openSse('hk_wrong')).res.status).toBe(401);
    const bad = await call(mainKey, 'GET', '/v1/events?after=abc&types=task.done&limit=5000');
    expect(bad.status).toBe(422);
    expect(bad.headers.get('content-type')).toContain('application/problem+json');
    expect(((await bad.json()) as { errors: Array<{ field: string }> }).errors.map((e) => e.field)).toEqual([
      'after',
      'types',
      'limit',
    ]);

    // A cursor beyond the tenant's last event (another tenant's, or of a restored database) is refused, naming the
    // last one, rather than waited on in silence until the events up to it are skipped.
    const ahead = '9000000000000000';
    const list = await call(mainKey, 'GET', `/v1/events?after=${ahead}`);
    expect(list.status).toBe(422);
    const problem = (await list.json()) as { errors: Array<{ field: string; message: string }> };
    expect(problem.errors[0]).toMatchObject({ field: 'after' });
    expect(problem.errors[0].message).toMatch(/beyond this tenant's last event \(cursor \d{16}\)/);
    const sse = await openSse(mainKey, '', { 'last-event-id': ahead });
    expect(sse.res.status).toBe(422);
    const ws = await openWs({ key: mainKey });
    ws.send({ type: 'subscribe', task_ids: '*', after: ahead });
    expect(await ws.next('error')).toMatchObject({ code: 'validation_failed' });
    ws.send({ type: 'subscribe', task_ids: '*', after: '0' });
    expect(await ws.next('subscribed')).toMatchObject({ task_ids: '*' });
    ws.ws.close();
  });

  it(
    "keeps tenants apart: another tenant's task ids are refused, its events never sent",
    { timeout: 60_000 },
    async () => {
      const other = await createKey(`tother${randomBytes(3).toString('hex')}`);
      const [mine] = await createTasks(mainKey, 1, 300);
      const ws = await openWs({ key: other.key });
      ws.send({ type: 'subscribe', task_ids: [mine], after: '0' });
      expect(await ws.next('error')).toMatchObject({ code: 'task_not_found' });
      expect(await ws.next('subscribed')).toMatchObject({ task_ids: [] });
      const everything = await openWs({ key: other.key });
      everything.send({ type: 'subscribe', task_ids: '*', after: '0' });
      await everything.next('subscribed');
      const sse = await openSse(other.key, `?task_ids=${mine}&after=0`);
      await allTerminal(mainKey, [mine]);
      const [theirs] = await createTasks(other.key, 1);
      await allTerminal(other.key, [theirs]);
      await eventually(async () =>
        everything.events().some((e) => e.event.type === 'task.completed') ? true : undefined,
      );
      expect(everything.events().every((e) => e.event.task_id === theirs)).toBe(true);
      expect(ws.events()).toEqual([]);
      expect(sse.events()).toEqual([]);
      expect((await allEvents(other.key)).every((e) => e.task_id === theirs)).toBe(true);
      ws.ws.close();
      everything.ws.close();
      sse.close();
    },
  );

  it("closes a revoked key's open streams within 5 s, and limits streams per key", { timeout: 60_000 }, async () => {
    const { id, key } = await createKey(`trev${randomBytes(3).toString('hex')}`);
    const ws = await openWs({ key });
    ws.send({ type: 'subscribe', task_ids: '*' });
    await ws.next('subscribed');
    const sse = await openSse(key);
    const third = await openSse(key);
    // STREAM_MAX_CONNECTIONS_PER_KEY=3 here: the fourth is refused, as SSE and as WebSocket.
    const refused = await openSse(key);
    expect(refused.res.status).toBe(429);
    expect(((await refused.res.json()) as { code: string }).code).toBe('stream_limit_reached');
    const refusedWs = await openWs({ key });
    expect(await refusedWs.next('error')).toMatchObject({ code: 'stream_limit_reached' });
    await eventually(async () => refusedWs.closed());
    expect(refusedWs.closed()!.code).toBe(1013);
    third.close();

    expect((await runCli(['keys', 'revoke', id], env)).code).toBe(0);
    await eventually(async () => (ws.closed() && sse.ended() ? true : undefined), { timeoutMs: 5_500 });
    expect(ws.closed()!.code).toBe(1008);
    expect(sse.frames.some((f) => f.comment?.includes('revoked'))).toBe(true);
  });

  it(
    'counts streams per key across API processes: the limit holds with the streams on two of them',
    { timeout: 90_000 },
    async () => {
      const second = await spawnHerald({ ...env, ROLE: 'api' });
      cleanups.push(() => second.kill9());
      const { key } = await createKey(`tmany${randomBytes(3).toString('hex')}`);
      // STREAM_MAX_CONNECTIONS_PER_KEY=3: two here and one there, then the fourth is refused on either process.
      const open = [await openSse(key), await openSse(key), await openSse(key, '', {}, second.baseUrl)];
      expect(open.map((s) => s.res.status)).toEqual([200, 200, 200]);
      const refused = await openSse(key, '', {}, second.baseUrl);
      expect(refused.res.status).toBe(429);
      const refusedWs = await openWs({ key, base: second.baseUrl });
      expect(await refusedWs.next('error')).toMatchObject({ code: 'stream_limit_reached' });
      await eventually(async () => refusedWs.closed());
      expect(refusedWs.closed()!.code).toBe(1013);
      // A stream that ends gives its place back, to any process.
      open[0].close();
      const reopened = await eventually(async () => {
        const s = await openSse(key, '', {}, second.baseUrl);
        if (s.res.status === 200) return s;
        s.close();
        return undefined;
      });
      expect(reopened.res.status).toBe(200);
      for (const s of [...open, reopened]) s.close();
      await second.kill9();
    },
  );
});
