import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createRootLogger, PinoNestLogger, redactUrl, requestLogging } from './logging.js';

function capture(logLevel: 'info' | 'error' = 'info') {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().trim().split('\n')) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, log: createRootLogger({ logLevel, role: 'all' }, stream) };
}

describe('PinoNestLogger', () => {
  it("writes Nest's calls as JSON lines with their context, stack and level", () => {
    const { lines, log } = capture();
    const nest = new PinoNestLogger(log);
    nest.log('listening', 'Herald');
    nest.error('it broke', 'Error: it broke\n    at x', 'Errors');
    nest.warn(new Error('careful'), 'Tasks');
    nest.debug('hidden at info', 'Tasks');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ level: 30, service: 'herald', role: 'all', context: 'Herald', msg: 'listening' });
    expect(lines[1]).toMatchObject({
      level: 50,
      context: 'Errors',
      msg: 'it broke',
      stack: 'Error: it broke\n    at x',
    });
    expect(lines[2]).toMatchObject({ level: 40, context: 'Tasks', msg: 'careful', err: { message: 'careful' } });
  });
});

describe('redactUrl', () => {
  it('hides the value of every credential-like query parameter, whatever its case or encoding', () => {
    expect(redactUrl('/v1/tasks?api_key=hk_abc&limit=5')).toBe('/v1/tasks?api_key=***&limit=5');
    expect(
      redactUrl(
        '/x?API_KEY=a&Token=b&access_token=c&client_secret=d&password=e&signature=f&sig=g&auth=h&key=i&X-Api-Key=j',
      ),
    ).toBe(
      '/x?API_KEY=***&Token=***&access_token=***&client_secret=***&password=***&signature=***&sig=***&auth=***&key=***&X-Api-Key=***',
    );
    expect(redactUrl('/x?api%5Fkey=hk_abc&a%75th=1')).toBe('/x?api%5Fkey=***&a%75th=***');
  });

  it('hides a Herald API key or signing secret under any name, and keeps everything else', () => {
    expect(redactUrl('/x?q=hk_abc&w=whsec_xyz&hk_bare&status=failed&cursor=01ab')).toBe(
      '/x?q=***&w=***&***&status=failed&cursor=01ab',
    );
    expect(redactUrl('/v1/tasks')).toBe('/v1/tasks');
    expect(redactUrl('/v1/tasks?status=completed&limit=5')).toBe('/v1/tasks?status=completed&limit=5');
    expect(redactUrl('/x?%E0%A4%A=1&')).toBe('/x?%E0%A4%A=1&');
  });
});

describe('requestLogging', () => {
  let server: http.Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  async function serve(logLevel: 'info' | 'error', status = 200) {
    const { lines, log } = capture(logLevel);
    const middleware = requestLogging(log);
    server = http.createServer((req, res) => middleware(req, res, () => res.writeHead(status).end('ok')));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { lines, base };
  }
  const settle = () => new Promise((r) => setTimeout(r, 20));

  it("reuses a sane X-Request-Id, echoes it and logs one line without the caller's credentials", async () => {
    const { lines, base } = await serve('info');
    const res = await fetch(`${base}/v1/tasks?x=1`, {
      headers: { 'x-request-id': 'req-1', authorization: 'Bearer hk_secret', 'idempotency-key': 'k1' },
    });
    expect(res.headers.get('x-request-id')).toBe('req-1');
    await settle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'request completed',
      req: { id: 'req-1', method: 'GET', url: '/v1/tasks?x=1', headers: { 'idempotency-key': 'k1' } },
      res: { statusCode: 200 },
    });
    expect(typeof lines[0].responseTime).toBe('number');
    expect(JSON.stringify(lines)).not.toContain('hk_secret');
  });

  it('writes a credential sent in the query string as ***', async () => {
    const { lines, base } = await serve('info');
    await fetch(`${base}/v1/tasks?api_key=hk_live_secret&limit=2`);
    await settle();
    expect((lines[0].req as { url: string }).url).toBe('/v1/tasks?api_key=***&limit=2');
    expect(JSON.stringify(lines)).not.toContain('hk_live_secret');
  });

  it('makes up an id when the given one is not sane, and keeps probes out of the log', async () => {
    const { lines, base } = await serve('info');
    const res = await fetch(`${base}/x`, { headers: { 'x-request-id': 'has spaces and ; semicolons' } });
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await fetch(`${base}/health/live`);
    await settle();
    expect(lines.map((l) => (l.req as { url: string }).url)).toEqual(['/x']);
  });

  it('logs server errors at error level and nothing else when the level is error', async () => {
    const failing = await serve('error', 503);
    await fetch(`${failing.base}/boom`);
    await settle();
    expect(failing.lines).toMatchObject([{ level: 50, res: { statusCode: 503 } }]);
    await new Promise<void>((r) => server!.close(() => r()));
    const fine = await serve('error', 200);
    await fetch(`${fine.base}/fine`);
    await settle();
    expect(fine.lines).toEqual([]);
  });
});
