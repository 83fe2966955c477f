import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';

let h: TestHerald;
let receiver: Receiver;
const down = new Set<string>();

// Ten attempts 100 ms apart: without a circuit, a receiver down for 3 s would use them all up in under a second.
const ATTEMPTS = 10;

beforeAll(async () => {
  h = await startTestHerald({ WEBHOOK_RETRY_SCHEDULE: ['0s', ...Array(ATTEMPTS - 1).fill('100ms')].join(','), CIRCUIT_FAILURES: '3', CIRCUIT_COOLDOWN_MS: '300' });
  receiver = await startReceiver({ respond: (req) => (down.has(req.path) ? { status: 503 } : { status: 200 }) });
});
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

const at = (path: string) => receiver.received.filter((r) => r.path === path);
async function endpoint(path: string, body: Record<string, unknown> = {}) {
  const res = await h.api('POST', '/v1/webhooks', { url: receiver.url(path), ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; secret: string };
}
async function openings(): Promise<number> {
  const res = await fetch(`${h.baseUrl}/metrics`, { headers: { authorization: `Bearer ${h.apiKey}` } });
  const line = (await res.text()).split('\n').find((l) => l.startsWith('herald_webhook_circuit_openings_total'));
  return Number(line?.split(' ')[1] ?? 0);
}

describe('circuit breaker', () => {
  it('opens after consecutive failures, holds deliveries without spending attempts, probes, and delivers everything once the receiver is back', async () => {
    const e = await endpoint('/down');
    down.add('/down');
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await h.api('POST', `/v1/webhooks/${e.id}/test`)).body.id);

    const open = await eventually(async () => {
      const v = (await h.api('GET', `/v1/webhooks/${e.id}`)).body;
      return v.circuit === 'open' ? v : undefined;
    });
    expect(Date.parse(open.circuit_until)).toBeGreaterThan(Date.now() - 1_000);
    const openedAt = at('/down').length;
    const openingsAtFirst = await openings();
    await new Promise((r) => setTimeout(r, 3_000));
    // While it was down and the circuit open, only probes went out: each failed probe opened the circuit again.
    const duringOutage = at('/down').length - openedAt;
    expect(duringOutage).toBeLessThanOrEqual(await openings() - openingsAtFirst + 1);
    expect(await openings()).toBeGreaterThan(openingsAtFirst);

    down.delete('/down');
    const succeeded = await eventually(async () => {
      const rows = await Promise.all(ids.map(async (id) => (await h.api('GET', `/v1/deliveries/${id}`)).body));
      return rows.every((d) => d.status === 'succeeded') ? rows : undefined;
    }, { timeoutMs: 15_000 });
    // Every event arrived, and no delivery ran out of attempts (the outage outlasted the whole retry schedule).
    const received = new Set(at('/down').filter((r) => r.headers['webhook-id']).map((r) => r.headers['webhook-id']));
    expect(received.size).toBe(ids.length);
    const attempts = succeeded.reduce((n, d) => n + d.attempt_log.length, 0);
    expect(attempts).toBe(at('/down').length);
    for (const d of succeeded) expect(d.attempts).toBeLessThan(ATTEMPTS);
    await eventually(async () => ((await h.api('GET', `/v1/webhooks/${e.id}`)).body.circuit === 'closed' ? true : undefined));
  }, 30_000);
});
