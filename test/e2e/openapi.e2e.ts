import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BaseResolver, createConfig, lintFromString } from '@redocly/openapi-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, eventually, type TestDatabase } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';

type Response = { description: string; content?: Record<string, { schema?: { $ref?: string } }> };
type Operation = { operationId?: string; summary?: string; responses: Record<string, Response> };
type Doc = { paths: Record<string, Record<string, Operation>> };

/** Lints with nothing but the document: a $ref outside it would be fetched, so it fails instead. */
class OfflineResolver extends BaseResolver {
  override async loadExternalRef(ref: string): Promise<never> {
    throw new Error(`the OpenAPI document refers outside itself: ${ref}`);
  }
}

// The built server (dist/cli.js), because its document is the one users get: `nest build` runs the Swagger plugin
// that reads the DTOs' validators into schemas, which the test build (SWC) does not.
let herald: Awaited<ReturnType<typeof spawnHerald>>;
let db: TestDatabase;
const apiKey = `hk_oas_${randomBytes(12).toString('hex')}`;
let doc: Doc;
let source: string;
beforeAll(async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-openapi-'));
  db = await createTestDatabase(dataDir);
  herald = await spawnHerald({
    DATA_DIR: dataDir,
    DATABASE_URL: db.url,
    QUEUE_PREFIX: `ho${randomBytes(4).toString('hex')}`,
    BOOTSTRAP_API_KEY: apiKey,
    SIMULATOR_DURATION_MS: '50',
    BODY_LIMIT_BYTES: '1024',
  });
  source = await (await fetch(`${herald.baseUrl}/docs-json`)).text();
  doc = JSON.parse(source) as Doc;
});
afterAll(async () => {
  await herald?.terminate();
  await db?.drop();
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([route, item]) =>
    Object.entries(item).map(([method, op]) => ({ route, method, op })),
  );

describe('OpenAPI document', () => {
  it('passes Redocly’s recommended rules with no errors and no warnings', async () => {
    const problems = await lintFromString({
      source,
      absoluteRef: 'herald-openapi.json',
      config: await createConfig({ extends: ['recommended'] }),
      externalRefResolver: new OfflineResolver(),
    });
    expect(problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? ''}`)).toEqual(
      [],
    );
  });

  it('names every operation with a summary and a readable operationId', () => {
    for (const { route, method, op } of operations()) {
      expect(op.summary, `${method} ${route}`).toBeTruthy();
      expect(op.operationId, `${method} ${route}`).toMatch(/^[a-z][A-Za-z]+$/);
    }
    expect(doc.paths['/v1/videos/generations/async'].post.operationId).toBe('createVideoTask');
  });

  it('documents every error answer as application/problem+json of the one Problem schema', () => {
    for (const { route, method, op } of operations()) {
      for (const [status, response] of Object.entries(op.responses).filter(([s]) => /^[45]/.test(s))) {
        expect(response.content, `${method} ${route} ${status}`).toEqual({
          'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
        });
      }
    }
  });

  it('lists the status and code of each problem a route really answers', async () => {
    const auth = { authorization: `Bearer ${apiKey}` };
    const json = { ...auth, 'content-type': 'application/json' };
    const created = await fetch(`${herald.baseUrl}/v1/images/generations/async`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ model: 'm', prompt: 'p' }),
    });
    const id = ((await created.json()) as { task_id: string }).task_id;
    await eventually(async () =>
      ((await (await fetch(`${herald.baseUrl}/v1/tasks/${id}`, { headers: auth })).json()) as { status: string })
        .status === 'completed'
        ? true
        : undefined,
    );
    const cases: Array<[string, string, string, RequestInit]> = [
      ['get', '/v1/tasks/{id}', `/v1/tasks/${id}`, {}],
      ['get', '/v1/tasks/{id}', '/v1/tasks/0190a8f2-0000-7000-8000-000000000000', { headers: auth }],
      [
        'post',
        '/v1/videos/generations/async',
        '/v1/videos/generations/async',
        { method: 'POST', headers: json, body: '{"model":' },
      ],
      [
        'post',
        '/v1/videos/generations/async',
        '/v1/videos/generations/async',
        { method: 'POST', headers: { ...auth, 'content-type': 'application/xml' }, body: '<task/>' },
      ],
      [
        'post',
        '/v1/videos/generations/async',
        '/v1/videos/generations/async',
        { method: 'POST', headers: json, body: JSON.stringify({ model: 'm', prompt: 'p'.repeat(2_000) }) },
      ],
      [
        'post',
        '/v1/videos/generations/async',
        '/v1/videos/generations/async',
        { method: 'POST', headers: json, body: JSON.stringify({ model: 'm' }) },
      ],
      ['post', '/v1/tasks/{id}/cancel', `/v1/tasks/${id}/cancel`, { method: 'POST', headers: auth }],
      [
        'post',
        '/v1/images/generations/tasks/{id}/retry',
        `/v1/images/generations/tasks/${id}/retry`,
        { method: 'POST', headers: auth },
      ],
      ['get', '/v1/deliveries/{id}', '/v1/deliveries/nope', { headers: auth }],
      ['delete', '/v1/webhooks/{id}', '/v1/webhooks/nope', { method: 'DELETE', headers: auth }],
      ['get', '/v1/artifacts/{name}', '/v1/artifacts/nope.png', {}],
    ];
    for (const [method, route, url, init] of cases) {
      const res = await fetch(herald.baseUrl + url, init);
      const body = (await res.json()) as { code: string };
      const documented = doc.paths[route][method].responses[String(res.status)];
      expect(res.status, `${method} ${url}`).toBeGreaterThanOrEqual(400);
      expect(res.headers.get('content-type'), `${method} ${url}`).toContain('application/problem+json');
      expect(documented?.description, `${method} ${url} answered ${res.status} ${body.code}`).toContain(
        `\`${body.code}\``,
      );
    }
  });
});
