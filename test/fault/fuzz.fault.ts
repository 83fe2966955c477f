import 'reflect-metadata';
import fc from 'fast-check';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KNOWN_FIELDS } from '../../src/tasks/dto/create-generation.dto.js';
import { recordFigures } from '../support/reliability.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let h: TestHerald;
let ids: { task: string; delivery: string; endpoint: string };
beforeAll(async () => {
  h = await startTestHerald({ RATE_LIMIT_PER_SECOND: '0', SIMULATOR_DURATION_MS: '50' });
  const task = (
    await h.api(
      'POST',
      '/v1/videos/generations/async',
      { model: 'm', prompt: 'p', webhook_url: 'https://example.com/h' },
      { prefer: 'wait=5' },
    )
  ).body.task_id;
  const endpoint = (await h.api('POST', '/v1/webhooks', { url: 'https://example.com/e' })).body.id;
  const delivery = (await h.api('GET', `/v1/tasks/${task}/deliveries`)).body.data[0]?.id ?? task;
  ids = { task, delivery, endpoint };
});
afterAll(async () => {
  await h?.stop();
});

const ROUTES: Array<[string, (id: typeof ids) => string]> = [
  ['POST', () => '/v1/videos/generations/async'],
  ['POST', () => '/v1/images/generations/async'],
  ['GET', (i) => `/v1/videos/generations/tasks/${i.task}`],
  ['DELETE', (i) => `/v1/videos/generations/${i.task}`],
  ['POST', (i) => `/v1/videos/generations/tasks/${i.task}/retry`],
  ['GET', (i) => `/v1/images/generations/${i.task}/status`],
  ['POST', (i) => `/v1/images/generations/tasks/${i.task}/retry`],
  ['GET', () => '/v1/tasks'],
  ['GET', (i) => `/v1/tasks/${i.task}`],
  ['GET', (i) => `/v1/tasks/${i.task}/events`],
  ['GET', (i) => `/v1/tasks/${i.task}/deliveries`],
  ['POST', (i) => `/v1/tasks/${i.task}/cancel`],
  ['GET', (i) => `/v1/deliveries/${i.delivery}`],
  ['POST', (i) => `/v1/deliveries/${i.delivery}/redeliver`],
  ['POST', () => '/v1/webhooks'],
  ['GET', () => '/v1/webhooks'],
  ['GET', (i) => `/v1/webhooks/${i.endpoint}`],
  ['PATCH', (i) => `/v1/webhooks/${i.endpoint}`],
  ['POST', (i) => `/v1/webhooks/${i.endpoint}/recover`],
  ['GET', (i) => `/v1/webhooks/${i.endpoint}/deliveries`],
  ['GET', () => '/v1/event-types'],
];

// The create body's own fields, then the other routes' fields.
const KNOWN = [...KNOWN_FIELDS, 'url', 'events', 'description', 'headers', 'secret', 'status', 'since'];
const junk = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxKeys: 3 }),
  fc.constantFrom(
    'http://169.254.169.254/',
    'http://[::1]/',
    'ftp://x',
    'https://a:b@x.com',
    '1e999',
    '-1',
    'NaN',
    '\u0000',
    'x'.repeat(5_000),
  ),
);
const body = fc.oneof(
  fc.dictionary(fc.constantFrom(...KNOWN), junk, { maxKeys: 8 }).map((o) => JSON.stringify(o)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }), // malformed JSON mostly
  fc.constantFrom('{', '[]', 'null', '"x"', '{"prompt":', '\u0000\u0001', '{"__proto__":{"x":1}}'),
);
const query = fc.dictionary(
  fc.constantFrom('status', 'kind', 'limit', 'cursor', 'created_after', 'after', 'event_type'),
  fc.string({ maxLength: 20 }),
  { maxKeys: 3 },
);
const header = fc.record({
  'content-type': fc.constantFrom(
    'application/json',
    'text/plain',
    'application/x-www-form-urlencoded',
    'application/json; charset=latin1',
    'multipart/form-data',
  ),
  'idempotency-key': fc.option(
    fc.string({ minLength: 0, maxLength: 300 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
    { nil: undefined },
  ),
  prefer: fc.option(fc.constantFrom('wait=abc', 'wait=0', 'wait=1', 'respond-async'), { nil: undefined }),
});

describe('fuzzing', () => {
  it(
    'answers 10,000 generated bad requests across every route without a 5xx, each error as problem+json',
    { timeout: 600_000 },
    async () => {
      const failures: string[] = [];
      const statuses: Record<number, number> = {};
      let sent = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...ROUTES),
          body,
          query,
          header,
          fc.boolean(),
          async ([method, route], raw, q, hdrs, bogusId) => {
            let path = route(ids);
            if (bogusId) path = path.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, (m) => m.split('').reverse().join(''));
            const qs = new URLSearchParams(q).toString();
            const headers: Record<string, string> = {
              authorization: `Bearer ${h.apiKey}`,
              'content-type': hdrs['content-type'],
            };
            if (hdrs['idempotency-key'] !== undefined) headers['idempotency-key'] = hdrs['idempotency-key'];
            if (hdrs.prefer) headers.prefer = hdrs.prefer === 'wait=1' ? 'wait=1' : hdrs.prefer;
            const res = await fetch(`${h.baseUrl}${path}${qs ? `?${qs}` : ''}`, {
              method,
              headers,
              body: method === 'GET' || method === 'DELETE' ? undefined : raw,
            });
            const text = await res.text();
            sent++;
            statuses[res.status] = (statuses[res.status] ?? 0) + 1;
            if (res.status >= 500)
              failures.push(`${method} ${path} ${raw.slice(0, 200)} → ${res.status} ${text.slice(0, 300)}`);
            if (res.status >= 400 && !String(res.headers.get('content-type')).includes('application/problem+json'))
              failures.push(`${method} ${path} → ${res.status} not problem+json`);
            return true;
          },
        ),
        { numRuns: 10_000, seed: 20261123 },
      );
      recordFigures('fuzzing: generated bad requests across every route', {
        requests: sent,
        responses_5xx: failures.filter((f) => / → 5\d\d/.test(f)).length,
        non_problem_errors: failures.filter((f) => f.includes('not problem')).length,
      });
      expect(failures.slice(0, 10)).toEqual([]);
      expect(sent).toBeGreaterThanOrEqual(10_000);
    },
  );
});

// The hostile forms a security probe found (issue 25): each must be answered with a 4xx problem+json, never a 5xx,
// a non-problem answer or, for a 413, a connection reset.
const BODY_ROUTES: Array<[string, (id: typeof ids) => string]> = [
  ['POST', () => '/v1/videos/generations/async'],
  ['POST', () => '/v1/images/generations/async'],
  ['POST', (i) => `/v1/videos/generations/tasks/${i.task}/retry`],
  ['POST', () => '/v1/webhooks'],
  ['PATCH', (i) => `/v1/webhooks/${i.endpoint}`],
  ['POST', (i) => `/v1/webhooks/${i.endpoint}/recover`],
];
const LIMIT = 1_048_576; // BODY_LIMIT_BYTES's default, which the Herald under test keeps

/** JSON text nesting `depth` objects or arrays inside `field` of an otherwise valid body. */
const nested = (depth: number, arrays: boolean, field: string) =>
  JSON.stringify({ model: 'm', prompt: 'p', url: 'https://example.com/e', since: '2026-01-01T00:00:00Z' }).slice(
    0,
    -1,
  ) + `,"${field}":${(arrays ? '[' : '{"a":').repeat(depth)}1${(arrays ? ']' : '}').repeat(depth)}}`;
const NON_LATIN1 = fc.constantFrom('a\u2028b', '\u{1F600}', '\u0100', '日本語', 'x\u2029', '\uFEFFv', 'ok\u{10FFFF}');

describe('fuzzing the hostile forms', () => {
  it(
    'answers deep nesting, non-Latin-1 webhook header values, oversized headers and oversized bodies with a 4xx problem, never a 5xx or a reset',
    { timeout: 600_000 },
    async () => {
      const failures: string[] = [];
      const counts: Record<string, number> = {};
      const check = (kind: string, what: string, status: number, type: string | null) => {
        counts[kind] = (counts[kind] ?? 0) + 1;
        if (status < 400 || status >= 500) failures.push(`${kind}: ${what} → ${status}`);
        else if (!String(type).includes('application/problem+json'))
          failures.push(`${kind}: ${what} → ${status} not problem+json`);
      };
      const send = async (
        method: string,
        path: string,
        body: string | undefined,
        headers: Record<string, string> = {},
      ) => {
        const res = await fetch(`${h.baseUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${h.apiKey}`, 'content-type': 'application/json', ...headers },
          body,
        });
        await res.arrayBuffer();
        return res;
      };

      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...BODY_ROUTES),
          fc.integer({ min: 33, max: 5_000 }),
          fc.boolean(),
          fc.constantFrom('webhook_metadata', 'simulate', 'headers', 'events', 'style'),
          async ([method, route], depth, arrays, field) => {
            const res = await send(method, route(ids), nested(depth, arrays, field));
            check(
              'deep nesting',
              `${method} ${route(ids)} ${field} depth ${depth}`,
              res.status,
              res.headers.get('content-type'),
            );
          },
        ),
        { numRuns: 300, seed: 20261201 },
      );

      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...BODY_ROUTES.slice(0, 5)),
          NON_LATIN1,
          fc.constantFrom('X-Tag', 'X-Trace-Id'),
          async ([method, route], value, name) => {
            const body = route(ids).startsWith('/v1/webhooks')
              ? { url: 'https://example.com/e2', headers: { [name]: value } }
              : { model: 'm', prompt: 'p', webhook_url: 'https://example.com/h', webhook_headers: { [name]: value } };
            const res = await send(method, route(ids), JSON.stringify(body));
            check(
              'non-Latin-1 header value',
              `${method} ${route(ids)} ${JSON.stringify(value)}`,
              res.status,
              res.headers.get('content-type'),
            );
          },
        ),
        { numRuns: 200, seed: 20261202 },
      );

      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...ROUTES),
          fc.integer({ min: 17_000, max: 200_000 }),
          fc.integer({ min: 1, max: 8 }),
          async ([method, route], size, spread) => {
            const headers: Record<string, string> = {};
            for (let i = 0; i < spread; i++) headers[`x-pad-${i}`] = 'a'.repeat(Math.ceil(size / spread));
            const res = await send(
              method,
              route(ids),
              method === 'GET' || method === 'DELETE' ? undefined : '{}',
              headers,
            );
            check(
              'oversized headers',
              `${method} ${route(ids)} ${size} bytes in ${spread}`,
              res.status,
              res.headers.get('content-type'),
            );
          },
        ),
        { numRuns: 200, seed: 20261203 },
      );

      // From a client in its own process: in this one, the server's event loop paces the client and hides resets.
      const client = fileURLToPath(new URL('../support/oversized-body-client.mjs', import.meta.url));
      const sizes = fc.sample(fc.integer({ min: LIMIT + 1, max: LIMIT + 5 * 1_048_576 }), {
        numRuns: BODY_ROUTES.length * 2,
        seed: 20261204,
      });
      for (const [n, [method, route]] of BODY_ROUTES.entries()) {
        for (const [k, mode] of ['length', 'chunked'].entries()) {
          const size = sizes[n * 2 + k];
          const { stdout } = await promisify(execFile)(process.execPath, [
            client,
            `${h.baseUrl}${route(ids)}`,
            h.apiKey,
            String(size),
            mode,
            '5',
            method,
          ]);
          for (const outcome of JSON.parse(stdout) as string[]) {
            counts['oversized body'] = (counts['oversized body'] ?? 0) + 1;
            if (outcome !== '413 payload_too_large application/problem+json')
              failures.push(`oversized body: ${method} ${route(ids)} ${size} bytes (${mode}) → ${outcome}`);
          }
        }
      }

      recordFigures('fuzzing: hostile forms (deep nesting, non-Latin-1 header values, oversized headers and bodies)', {
        requests: Object.values(counts).reduce((a, b) => a + b, 0),
        ...Object.fromEntries(Object.entries(counts).map(([k, v]) => [k.replace(/\W+/g, '_'), v])),
        failures: failures.length,
      });
      const byKind: Record<string, number> = {};
      for (const f of failures) byKind[f.split(':')[0]] = (byKind[f.split(':')[0]] ?? 0) + 1;
      expect({ byKind, first: failures.slice(0, 10) }).toEqual({ byKind: {}, first: [] });
      expect(Object.keys(counts).sort()).toEqual([
        'deep nesting',
        'non-Latin-1 header value',
        'oversized body',
        'oversized headers',
      ]);
    },
  );
});
