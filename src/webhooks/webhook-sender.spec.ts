import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HeraldConfig } from '../config/config.js';
import { parseCidrs } from '../config/cidrs.js';
import { guardedLookup, RESPONSE_SNIPPET_BYTES, WebhookSender } from './webhook-sender.js';

const resolve = (allowed: string[], host: string, all = false) =>
  new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((done) =>
    guardedLookup(parseCidrs(allowed))(host, { all }, (err, address) => done({ err, address })),
  );

describe('connect-time SSRF guard (DNS lookup)', () => {
  it('refuses a name that resolves to a blocked address', async () => {
    const { err } = await resolve([], 'localhost');
    expect(err?.code).toBe('EBLOCKED');
    expect(err?.message).toContain('webhooks may not reach');
  });

  it('returns the checked address when the range is allowed, for single and all-address lookups', async () => {
    const one = await resolve(['127.0.0.0/8', '::1/128'], 'localhost');
    expect(one.err).toBeNull();
    expect(['127.0.0.1', '::1']).toContain(one.address);
    const all = await resolve(['127.0.0.0/8', '::1/128'], 'localhost', true);
    expect(Array.isArray(all.address)).toBe(true);
  });
});

describe('WebhookSender (the one outbound client) against a local server', () => {
  const sender = (timeoutMs = 300, allowed = ['127.0.0.0/8'], concurrency = 4) =>
    new WebhookSender({
      webhook: { allowedCidrs: parseCidrs(allowed), timeoutMs, concurrency },
    } as unknown as HeraldConfig);
  let open = 0;
  let mostOpen = 0;
  let server: http.Server;
  let base: string;
  let seen: Array<{ path?: string; headers: http.IncomingHttpHeaders; body: string }> = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        seen.push({ path: req.url, headers: req.headers, body });
        if (req.url === '/slow') return; // never answers
        if (req.url === '/stall') return void res.writeHead(200).write('part'); // answers, then never ends the body
        if (req.url === '/hold') {
          mostOpen = Math.max(mostOpen, ++open);
          return setTimeout(() => (open--, res.writeHead(200).end('held')), 30);
        }
        if (req.url === '/busy') return res.writeHead(429, { 'retry-after': '7' }).end('later');
        if (req.url === '/moved') return res.writeHead(302, { location: '/ok' }).end();
        if (req.url === '/big') return res.writeHead(200).end('x'.repeat(200_000));
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => (seen = []));

  it('posts the exact body and headers, and reports status and a snippet of the answer', async () => {
    const s = sender();
    const result = await s.send({
      url: `${base}/ok?x=1`,
      body: '{"a":1}',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer t' },
    });
    expect(result).toMatchObject({ statusCode: 200, responseSnippet: 'ok' });
    expect(seen[0]).toMatchObject({
      path: '/ok?x=1',
      body: '{"a":1}',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
    });
    await s.onApplicationShutdown();
  });

  it('reads Retry-After, does not follow redirects, and keeps only a snippet of a large answer', async () => {
    const s = sender();
    expect(await s.send({ url: `${base}/busy`, body: '{}', headers: {} })).toMatchObject({
      statusCode: 429,
      retryAfterMs: 7_000,
    });
    expect(await s.send({ url: `${base}/moved`, body: '{}', headers: {} })).toMatchObject({ statusCode: 302 });
    expect(seen.map((r) => r.path)).toEqual(['/busy', '/moved']);
    const big = await s.send({ url: `${base}/big`, body: '{}', headers: {} });
    expect(big.statusCode).toBe(200);
    expect(big.responseSnippet).toHaveLength(RESPONSE_SNIPPET_BYTES);
    await s.onApplicationShutdown();
  });

  it('keeps at most WEBHOOK_CONCURRENCY requests on the wire, however many are asked for at once', async () => {
    const s = sender(2_000, ['127.0.0.0/8'], 2);
    mostOpen = 0;
    const results = await Promise.all(
      Array.from({ length: 6 }, () => s.send({ url: `${base}/hold`, body: '{}', headers: {} })),
    );
    expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(mostOpen).toBe(2);
    await s.onApplicationShutdown();
  });

  it('gives up after the timeout and says so', async () => {
    const s = sender(150);
    const result = await s.send({ url: `${base}/slow`, body: '{}', headers: {} });
    expect(result.statusCode).toBeUndefined();
    expect(result.error).toMatch(/^timeout: no response within 150 ms/);
    expect(result.durationMs).toBeGreaterThanOrEqual(145);
    expect(result.durationMs).toBeLessThan(1_000);
    await s.onApplicationShutdown();
  });

  it('keeps the status and what arrived of a body that stalls past the deadline', async () => {
    const s = sender(150);
    const result = await s.send({ url: `${base}/stall`, body: '{}', headers: {} });
    expect(result).toMatchObject({ statusCode: 200, responseSnippet: 'part' });
    expect(result.durationMs).toBeGreaterThanOrEqual(145);
    await s.onApplicationShutdown();
  });

  it('reports a refused connection as a retryable error, and a blocked name as blocked without connecting', async () => {
    const s = sender(300, []);
    const blocked = await s.send({ url: `http://localhost.:${new URL(base).port}/ok`, body: '{}', headers: {} });
    expect(blocked).toMatchObject({ blocked: true });
    expect(blocked.error).toMatch(/^blocked: /);
    expect(seen).toHaveLength(0);
    await s.onApplicationShutdown();
    const open = sender();
    const refused = await open.send({ url: 'http://127.0.0.1:1/', body: '{}', headers: {} });
    expect(refused.blocked).toBeUndefined();
    expect(refused.error).toMatch(/ECONNREFUSED/);
    expect(refused.errorCode).toBe('ECONNREFUSED');
    await open.onApplicationShutdown();
  });

  it('reports a header value undici cannot send with its code, without sending anything', async () => {
    const s = sender();
    const result = await s.send({ url: `${base}/ok`, body: '{}', headers: { 'X-Foo': 'a\u2028b' } });
    expect(result).toMatchObject({
      errorCode: 'UND_ERR_INVALID_ARG',
      error: expect.stringMatching(/^UND_ERR_INVALID_ARG: /),
    });
    expect(result.statusCode).toBeUndefined();
    expect(seen).toHaveLength(0);
    await s.onApplicationShutdown();
  });
});
