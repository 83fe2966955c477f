import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestHerald, type TestHerald } from '../support/herald.js';

// Hostile input found by a security probe (issue 25): each must be a 4xx problem+json, never a 5xx, a non-problem
// answer or a reset connection.
const run = promisify(execFile);
let h: TestHerald;
let taskId: string;
let endpointId: string;
const LIMIT = 1_048_576;
beforeAll(async () => {
  h = await startTestHerald({ BODY_LIMIT_BYTES: String(LIMIT) });
  taskId = (
    await h.api('POST', '/v1/videos/generations/async', { model: 'm', prompt: 'p', simulate: { fail_at_percent: 10 } })
  ).body.task_id;
  endpointId = (await h.api('POST', '/v1/webhooks', { url: 'https://example.com/e' })).body.id;
});
afterAll(async () => {
  await h?.stop();
});

/** Sends raw bytes on a new connection and returns everything the server wrote back before it closed. */
function rawExchange(
  request: string | Buffer,
  { halfClose = true } = {},
): Promise<{ status: number; headers: string; body: any }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(new URL(h.baseUrl).port), '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head, ...rest] = text.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      let body: unknown = rest.join('\r\n\r\n');
      try {
        body = JSON.parse(body as string);
      } catch {
        /* not JSON */
      }
      resolve({ status, headers: head.toLowerCase(), body });
    });
    // Half-closed after the request unless the answer must wait for the server (it closes: Connection: close).
    if (halfClose) socket.end(request);
    else socket.write(request);
  });
}

/** What each of `count` oversized POSTs saw, from a client in its own process (see oversized-body-client.mjs). */
async function postOversized(path: string, size: number, chunked: boolean, count: number): Promise<string[]> {
  const client = fileURLToPath(new URL('../support/oversized-body-client.mjs', import.meta.url));
  const { stdout } = await run(process.execPath, [
    client,
    `${h.baseUrl}${path}`,
    h.apiKey,
    String(size),
    chunked ? 'chunked' : 'length',
    String(count),
  ]);
  return JSON.parse(stdout) as string[];
}

const deep = (depth: number) =>
  `{"model":"m","prompt":"p","url":"https://example.com/e","since":"2026-01-01T00:00:00Z","webhook_metadata":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;

describe('deeply nested JSON', () => {
  const routes = () => [
    ['POST', '/v1/videos/generations/async'],
    ['POST', '/v1/images/generations/async'],
    ['POST', `/v1/videos/generations/tasks/${taskId}/retry`],
    ['POST', '/v1/webhooks'],
    ['PATCH', `/v1/webhooks/${endpointId}`],
    ['POST', `/v1/webhooks/${endpointId}/recover`],
  ];

  it('is 400 malformed_json on every create and endpoint route, not a 500', async () => {
    for (const [method, route] of routes()) {
      for (const body of [deep(3_000), `{"model":"m","prompt":"p","x":${'['.repeat(3_000)}${']'.repeat(3_000)}}`]) {
        const res = await h.api(method, route, body);
        expect({ route, status: res.status, type: res.headers.get('content-type'), code: res.body.code }).toEqual({
          route,
          status: 400,
          type: expect.stringContaining('application/problem+json'),
          code: 'malformed_json',
        });
        expect(res.body.detail).toContain('32 levels');
      }
    }
  });

  it('still accepts metadata nested a few levels', async () => {
    const res = await h.api('POST', '/v1/videos/generations/async', deep(20));
    expect(res.status).toBe(202);
  });
});

describe('request headers over the limit', () => {
  it('are answered 431 problem+json with Connection: close', async () => {
    const res = await rawExchange(
      `GET /v1/tasks?api_key=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.apiKey}\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
    );
    expect(res.status).toBe(431);
    expect(res.headers).toContain('content-type: application/problem+json');
    expect(res.headers).toContain('connection: close');
    expect(res.body).toMatchObject({
      status: 431,
      code: 'headers_too_large',
      title: 'Request Header Fields Too Large',
      instance: '/v1/tasks',
    });
  });

  it('come back as a 431 problem to fetch as well', async () => {
    const res = await fetch(`${h.baseUrl}/v1/tasks`, {
      headers: { authorization: `Bearer ${h.apiKey}`, 'x-big': 'a'.repeat(40_000) },
    });
    expect(res.status).toBe(431);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect((await res.json()).code).toBe('headers_too_large');
  });

  it('and a request Node cannot parse is a 400 problem', async () => {
    const res = await rawExchange('GET /v1/tasks HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n');
    expect(res.status).toBe(400);
    expect(res.headers).toContain('content-type: application/problem+json');
    expect(res.body).toMatchObject({ status: 400, code: 'bad_request' });
    const chunks = await rawExchange(
      `POST /v1/videos/generations/async HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.apiKey}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    );
    expect(chunks.status).toBe(400);
    expect(chunks.headers).toContain('content-type: application/problem+json');
  });
});

describe('a body over BODY_LIMIT_BYTES', () => {
  for (const chunked of [false, true]) {
    it(`is answered 413 problem+json that the client reads, without a reset (${chunked ? 'chunked' : 'Content-Length'}, 20 times)`, async () => {
      const outcomes = await postOversized('/v1/videos/generations/async', LIMIT + 5 * 1_048_576, chunked, 20);
      expect(outcomes).toEqual(Array(20).fill('413 payload_too_large application/problem+json'));
      expect((await h.api('GET', '/health/live')).status).toBe(200);
    });
  }
});

describe('a client that asks first (Expect: 100-continue)', () => {
  it('is answered 413 at once when it declares more than the route takes, and 100 Continue otherwise', async () => {
    const head = (method: string, path: string, length: number, extra = '') =>
      `${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${h.apiKey}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n${extra}\r\n`;
    // No body is sent: only an answer that does not wait for one ends these exchanges.
    const json = await rawExchange(head('POST', '/v1/videos/generations/async', LIMIT + 1));
    expect(json.status).toBe(413);
    expect(json.headers).toContain('content-type: application/problem+json');
    expect(json.body).toMatchObject({ code: 'payload_too_large', instance: '/v1/videos/generations/async' });
    const upload = await rawExchange(head('PUT', '/v1/worker/leases/x/artifacts/a.bin', 600 * 1_048_576));
    expect(upload.status).toBe(413);
    expect(upload.body).toMatchObject({ code: 'payload_too_large' });
    const body = JSON.stringify({ model: 'm', prompt: 'p' });
    const small = await rawExchange(
      head('POST', '/v1/videos/generations/async', Buffer.byteLength(body), 'Connection: close\r\n') + body,
      { halfClose: false },
    );
    expect(small.status).toBe(100);
    expect(String(small.body)).toMatch(/^HTTP\/1\.1 202 /);
  });
});

describe('validation messages', () => {
  it('say a missing prompt is required and a duration in words must be a number', async () => {
    const res = await h.api('POST', '/v1/videos/generations/async', { model: 'm', duration: 'six' });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      { field: 'prompt', message: 'prompt is required' },
      { field: 'duration', message: 'duration must be a number' },
    ]);
  });

  it('give one message per field on the endpoint routes too', async () => {
    const res = await h.api('POST', '/v1/webhooks', { secret: 5, events: 'task.completed' });
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual([
      { field: 'url', message: 'url is required' },
      { field: 'events', message: 'events must be an array' },
      { field: 'secret', message: 'secret must be a string' },
    ]);
    const recover = await h.api('POST', `/v1/webhooks/${endpointId}/recover`, {});
    expect(recover.body.errors).toEqual([{ field: 'since', message: 'since is required' }]);
  });

  it('answer a bare JSON array or value with 400 malformed_json, as the README says', async () => {
    for (const body of ['[1,2]', '[]', '"x"', '12']) {
      const res = await h.api('POST', '/v1/videos/generations/async', body);
      expect({ body, status: res.status, code: res.body.code }).toEqual({ body, status: 400, code: 'malformed_json' });
    }
  });
});
