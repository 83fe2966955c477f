import { describe, expect, it } from 'vitest';
import { standardSignature } from './standard-webhooks.js';
import { describeBody, formatLine, formatSummary, listen, parseSecrets, SECRET_HINT } from './listen.js';

// Signed as Herald's sender signs (webhooks/signature.ts uses the same primitives); the official library checks them too.
const signatureHeader = (secrets: string[], id: string, ts: number, body: string) =>
  secrets.map((s) => `v1,${standardSignature(s, id, ts, body)}`).join(' ');

const TENANT = 'whsec_' + Buffer.alloc(24, 1).toString('base64');
const ENDPOINT = 'whsec_' + Buffer.alloc(24, 2).toString('base64');
const OTHER = 'whsec_' + Buffer.alloc(24, 3).toString('base64');

describe('herald listen output', () => {
  it('describes Conduit payloads and envelopes', () => {
    expect(
      describeBody({ task_id: 't1', status: 'processing', webhook_type: 'video_generation_progress', sequence: 4 }),
    ).toEqual({ type: 'video_generation_progress', taskId: 't1', sequence: 4, status: 'processing' });
    expect(
      describeBody({ id: 'e', type: 'task.completed', created: 1, data: { task_id: 't2', status: 'completed' } }),
    ).toMatchObject({ type: 'task.completed', taskId: 't2', status: 'completed' });
    expect(describeBody(undefined).type).toBe('unknown');
  });

  it('prints one readable line per event', () => {
    const line = formatLine({
      at: new Date('2026-01-01T12:00:01.123Z'),
      type: 'video_generation_completed',
      taskId: 't1',
      sequence: 12,
      status: 'completed',
      attempt: 2,
      signature: { invalid: 'invalid_signature' },
      answer: 200,
    });
    expect(line).toContain('12:00:01.123');
    expect(line).toContain('task=t1');
    expect(line).toContain('seq=12');
    expect(line).toContain('attempt=2');
    expect(line).toContain('signature=INVALID (invalid_signature)');
  });

  it('sums up', () => {
    expect(
      formatSummary({ received: 3, valid: 2, invalid: 1, unverified: 0, simulatedFailures: 1, duplicates: 1 }),
    ).toBe(
      'received 3 webhooks: 2 valid, 1 invalid, 0 unverified; 1 simulated failures; 1 repeats of an earlier webhook-id',
    );
  });

  it('names the secret that verified when there are several, and counts each', () => {
    const line = formatLine({
      at: new Date(),
      type: 'task.completed',
      attempt: 1,
      signature: { valid: 'orders' },
      answer: 200,
    });
    expect(line).toContain('signature=valid (orders)');
    expect(
      formatSummary({
        received: 3,
        valid: 3,
        validBy: { tenant: 1, orders: 2 },
        invalid: 0,
        unverified: 0,
        simulatedFailures: 0,
        duplicates: 0,
      }),
    ).toContain('3 valid (tenant: 1, orders: 2), 0 invalid');
  });
});

describe('parseSecrets', () => {
  it('takes repeated and comma-separated secrets, named label=whsec_… or called by place and last four characters', () => {
    expect(parseSecrets([`tenant=${TENANT}`, `${ENDPOINT}, orders=${OTHER}`])).toEqual([
      { label: 'tenant', secret: TENANT },
      { label: `#2 …${ENDPOINT.slice(-4)}`, secret: ENDPOINT },
      { label: 'orders', secret: OTHER },
    ]);
  });

  it('keeps a secret given twice once (HERALD_WEBHOOK_SECRET and HERALD_WEBHOOK_SECRETS may overlap), and ignores empty values', () => {
    expect(parseSecrets([TENANT, '', ` ${TENANT} `])).toEqual([{ label: `#1 …${TENANT.slice(-4)}`, secret: TENANT }]);
  });

  it('refuses what is not a secret without printing it whole', () => {
    expect(() => parseSecrets(['hk_not-a-secret!'])).toThrow(/not a whsec_… secret/);
    expect(() => parseSecrets(['hk_not-a-secret!'])).not.toThrow(/hk_not/);
  });
});

describe('listen with several secrets', () => {
  const signed = (secret: string, id: string, body: string) => {
    const ts = Math.floor(Date.now() / 1000);
    return {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': signatureHeader([secret], id, ts, body),
    };
  };

  it('verifies tenant and endpoint deliveries alike, says which secret matched, and hints once when none does', async () => {
    const lines: string[] = [];
    const receiver = await listen({
      port: 0,
      secrets: parseSecrets([`tenant=${TENANT}`, `orders=${ENDPOINT}`]),
      print: (l) => lines.push(l),
    });
    try {
      const url = `http://127.0.0.1:${receiver.port}/`;
      const post = (secret: string, id: string) => {
        const body = JSON.stringify({
          id,
          type: 'task.completed',
          created: 1,
          data: { task_id: id, status: 'completed' },
        });
        return fetch(url, { method: 'POST', headers: signed(secret, id, body), body });
      };
      expect((await post(TENANT, 'a')).status).toBe(200);
      expect((await post(ENDPOINT, 'b')).status).toBe(200);
      await post(OTHER, 'c');
      await post(OTHER, 'd');
      expect(lines.find((l) => l.includes('task=a'))).toContain('signature=valid (tenant)');
      expect(lines.find((l) => l.includes('task=b'))).toContain('signature=valid (orders)');
      expect(lines.filter((l) => l.includes('INVALID (invalid_signature)'))).toHaveLength(2);
      expect(lines.filter((l) => l === SECRET_HINT)).toHaveLength(1);
    } finally {
      const summary = await receiver.close();
      expect(summary).toMatchObject({ valid: 2, invalid: 2, validBy: { tenant: 1, orders: 1 } });
    }
  });
});
