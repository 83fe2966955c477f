import { lookup } from 'node:dns/promises';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeysService } from '../../src/auth/api-keys.service.js';
import { isAddressAllowed } from '../../src/webhooks/address-policy.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';
import { recordFigures } from '../support/reliability.js';
import { BLOCKED_URLS } from '../support/ssrf-cases.js';

// This Herald opens no address range: every private or loopback target is refused.
let h: TestHerald;
let receiver: Receiver;
beforeAll(async () => {
  h = await startTestHerald({ WEBHOOK_ALLOWED_CIDRS: '', RATE_LIMIT_PER_SECOND: '0' });
  receiver = await startReceiver();
});
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

describe('SSRF, end to end', () => {
  it('refuses every blocked address form at submit, for tasks and for endpoints (422 webhook_url_blocked)', async () => {
    for (const [, url] of BLOCKED_URLS) {
      const task = await h.api('POST', '/v1/videos/generations/async', { model: 'm', prompt: 'p', webhook_url: url });
      expect(task.status, url).toBe(422);
      expect(task.body.code, url).toBe('webhook_url_blocked');
      const endpoint = await h.api('POST', '/v1/webhooks', { url });
      expect(endpoint.body.code, url).toBe('webhook_url_blocked');
    }
    recordFigures('SSRF: blocked address forms refused at submit', { forms: BLOCKED_URLS.length, accepted: 0 });
  });

  it('refuses at connect time a hostname that resolves to a private address, without connecting', async () => {
    const name = hostname();
    const addresses = await lookup(name, { all: true }).catch(() => []);
    if (!addresses.length || addresses.some((a) => isAddressAllowed(a.address))) return; // this host name is public here
    const port = new URL(receiver.url()).port;
    const created = await h.api('POST', '/v1/videos/generations/async', {
      model: 'm',
      prompt: 'p',
      webhook_url: `http://${name}:${port}/hook`,
      webhook_events: ['completed'],
      simulate: { duration_ms: 0 },
    });
    expect(created.status).toBe(202);
    const delivery = await eventually(async () => {
      const list = (await h.api('GET', `/v1/tasks/${created.body.task_id}/deliveries`)).body.data;
      return list[0]?.status === 'failed' ? list[0] : undefined;
    });
    expect(delivery.attempts).toBe(1);
    expect(delivery.last_error).toContain('may not reach');
    expect(receiver.received).toHaveLength(0);
  });
});

describe('tenant isolation', () => {
  it('answers 404 on every route for another tenant’s ids', async () => {
    const task = (
      await h.api(
        'POST',
        '/v1/videos/generations/async',
        { model: 'm', prompt: 'p', webhook_url: 'https://example.com/h', simulate: { duration_ms: 0 } },
        { prefer: 'wait=5' },
      )
    ).body.task_id;
    const delivery = (await h.api('GET', `/v1/tasks/${task}/deliveries`)).body.data[0].id;
    const endpoint = (await h.api('POST', '/v1/webhooks', { url: 'https://example.com/e' })).body.id;
    const other = await h.herald.app.get(ApiKeysService).createKey('intruder');
    const headers = { authorization: `Bearer ${other.key}` };
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/v1/videos/generations/tasks/${task}`],
      ['DELETE', `/v1/videos/generations/${task}`],
      ['POST', `/v1/videos/generations/tasks/${task}/retry`, {}],
      ['GET', `/v1/images/generations/${task}/status`],
      ['GET', `/v1/images/generations/tasks/${task}`],
      ['DELETE', `/v1/images/generations/${task}`],
      ['POST', `/v1/images/generations/tasks/${task}/retry`, {}],
      ['GET', `/v1/tasks/${task}`],
      ['GET', `/v1/tasks/${task}/events`],
      ['GET', `/v1/tasks/${task}/events/stream`],
      ['GET', `/v1/tasks/${task}/deliveries`],
      ['GET', `/v1/deliveries/${delivery}`],
      ['POST', `/v1/deliveries/${delivery}/redeliver`],
      ['GET', `/v1/webhooks/${endpoint}`],
      ['PATCH', `/v1/webhooks/${endpoint}`, { description: 'x' }],
      ['DELETE', `/v1/webhooks/${endpoint}`],
      ['POST', `/v1/webhooks/${endpoint}/test`],
      ['POST', `/v1/webhooks/${endpoint}/rotate-secret`],
      ['POST', `/v1/webhooks/${endpoint}/recover`, { since: new Date().toISOString() }],
      ['GET', `/v1/webhooks/${endpoint}/deliveries`],
    ];
    for (const [method, route, body] of routes) {
      const res = await h.api(method, route, body, headers);
      expect(res.status, `${method} ${route}`).toBe(404);
      expect(res.headers.get('content-type'), route).toContain('application/problem+json');
    }
    for (const list of ['/v1/tasks', '/v1/webhooks'])
      expect((await h.api('GET', list, undefined, headers)).body.data).toEqual([]);
    recordFigures('tenant isolation: routes tried with another tenant’s ids', { routes: routes.length, leaks: 0 });
  });
});

describe('secrets and limits', () => {
  it('never returns the API key, webhook header values, or an endpoint secret after creation', async () => {
    const created = await h.api('POST', '/v1/videos/generations/async', {
      model: 'm',
      prompt: 'p',
      webhook_url: 'https://example.com/h',
      webhook_headers: { Authorization: 'Bearer value-123-secret' },
    });
    const endpoint = await h.api('POST', '/v1/webhooks', {
      url: 'https://example.com/e',
      headers: { 'X-Token': 'endpoint-header-secret' },
    });
    const texts = await Promise.all(
      [
        `/v1/tasks/${created.body.task_id}`,
        '/v1/tasks',
        `/v1/webhooks/${endpoint.body.id}`,
        '/v1/webhooks',
        `/v1/tasks/${created.body.task_id}/events`,
      ].map(async (r) => JSON.stringify((await h.api('GET', r)).body)),
    );
    for (const text of texts) {
      expect(text).not.toContain(h.apiKey);
      expect(text).not.toContain('value-123-secret');
      expect(text).not.toContain('endpoint-header-secret');
      expect(text).not.toContain(endpoint.body.secret);
    }
  });

  it('limits request bodies (413) and header size (431)', async () => {
    const big = await h.api('POST', '/v1/videos/generations/async', {
      model: 'm',
      prompt: 'p',
      pad: 'x'.repeat(2_000_000),
    });
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');
    const res = await fetch(`${h.baseUrl}/v1/tasks`, {
      headers: { authorization: `Bearer ${h.apiKey}`, 'x-big': 'y'.repeat(20_000) },
    });
    expect(res.status).toBe(431);
  });

  it('rate-limits each API key (429 with Retry-After), then lets it through again', async () => {
    const limited = await startTestHerald({ RATE_LIMIT_PER_SECOND: '5' });
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => limited.api('GET', '/v1/tasks')));
      const throttled = answers.filter((a) => a.status === 429);
      expect(throttled.length).toBeGreaterThan(0);
      expect(throttled[0].headers.get('retry-after')).toBe('1');
      expect(throttled[0].body.code).toBe('rate_limited');
      expect(answers.filter((a) => a.status === 200).length).toBeLessThanOrEqual(10);
      await new Promise((r) => setTimeout(r, 2_100));
      expect((await limited.api('GET', '/v1/tasks')).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });
});
