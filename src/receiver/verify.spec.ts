import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { legacySignature, standardSignature } from './standard-webhooks.js';
import { matchWebhook, verifyLegacySignature, verifyWebhook, WebhookVerificationError } from './verify.js';

// Signed as Herald's sender signs (webhooks/signature.ts uses the same primitives); the official library checks them too.
const signatureHeader = (secrets: string[], id: string, ts: number, body: string) =>
  secrets.map((s) => `v1,${standardSignature(s, id, ts, body)}`).join(' ');
const signLegacy = legacySignature;

const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const at = VECTOR.timestamp * 1000;
const headers = (over: Record<string, string> = {}) => ({
  'webhook-id': VECTOR.id,
  'webhook-timestamp': String(VECTOR.timestamp),
  'webhook-signature': VECTOR.signature,
  ...over,
});
const reason = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookVerificationError);
    return (err as WebhookVerificationError).reason;
  }
  return 'accepted';
};

describe('verifyWebhook', () => {
  it('accepts the Standard Webhooks test vector and returns the parsed event', () => {
    expect(verifyWebhook(VECTOR.secret, headers(), VECTOR.body, { now: at })).toEqual({ test: 2432232314 });
  });

  it('accepts any one matching signature in the list, and other versions are ignored', () => {
    expect(
      verifyWebhook(
        VECTOR.secret,
        headers({ 'webhook-signature': `v2,abc v1,Zm9v ${VECTOR.signature}` }),
        VECTOR.body,
        { now: at },
      ),
    ).toBeTruthy();
  });

  it('takes several secrets (tenant and endpoints): any one verifies, and matchWebhook says which', () => {
    const other = 'whsec_' + Buffer.alloc(24, 7).toString('base64');
    expect(verifyWebhook([other, VECTOR.secret], headers(), VECTOR.body, { now: at })).toEqual({ test: 2432232314 });
    expect(matchWebhook([other, VECTOR.secret], headers(), VECTOR.body, { now: at })).toEqual({
      event: { test: 2432232314 },
      secretIndex: 1,
    });
    expect(matchWebhook(VECTOR.secret, headers(), VECTOR.body, { now: at }).secretIndex).toBe(0);
    expect(reason(() => verifyWebhook([other, other], headers(), VECTOR.body, { now: at }))).toBe('invalid_signature');
    expect(() => verifyWebhook([], headers(), VECTOR.body, { now: at })).toThrow(TypeError);
  });

  it('reads Node headers in any case, string arrays, WHATWG Headers and Buffers', () => {
    const upper = {
      'Webhook-Id': [VECTOR.id],
      'WEBHOOK-TIMESTAMP': String(VECTOR.timestamp),
      'Webhook-Signature': VECTOR.signature,
    };
    expect(verifyWebhook(VECTOR.secret, upper, Buffer.from(VECTOR.body), { now: at })).toBeTruthy();
    expect(verifyWebhook(VECTOR.secret, new Headers(headers()), VECTOR.body, { now: at })).toBeTruthy();
  });

  it.each([
    ['a tampered body', headers(), '{"test": 2432232315}', 'invalid_signature'],
    ['a tampered id', headers({ 'webhook-id': 'msg_other' }), VECTOR.body, 'invalid_signature'],
    [
      'a tampered timestamp',
      headers({ 'webhook-timestamp': String(VECTOR.timestamp + 1) }),
      VECTOR.body,
      'invalid_signature',
    ],
    [
      'a missing signature',
      { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp) },
      VECTOR.body,
      'missing_header',
    ],
    ['a non-numeric timestamp', headers({ 'webhook-timestamp': 'yesterday' }), VECTOR.body, 'invalid_timestamp'],
    [
      'a signature with another secret',
      headers(),
      VECTOR.body,
      'invalid_signature',
      'whsec_' + Buffer.alloc(24, 9).toString('base64'),
    ],
  ])('refuses %s', (_, h, body, expected, secret = VECTOR.secret) => {
    expect(reason(() => verifyWebhook(secret, h as Record<string, string>, body, { now: at }))).toBe(expected);
  });

  it('refuses timestamps outside the tolerance in both directions', () => {
    expect(reason(() => verifyWebhook(VECTOR.secret, headers(), VECTOR.body, { now: at + 301_000 }))).toBe(
      'timestamp_too_old',
    );
    expect(reason(() => verifyWebhook(VECTOR.secret, headers(), VECTOR.body, { now: at - 301_000 }))).toBe(
      'timestamp_too_new',
    );
    expect(
      verifyWebhook(VECTOR.secret, headers(), VECTOR.body, { now: at + 3_600_000, toleranceSeconds: 3_600 }),
    ).toBeTruthy();
  });

  it('agrees with the official library and with what Herald signs', () => {
    const secret = 'whsec_' + Buffer.alloc(32, 5).toString('base64');
    const body = JSON.stringify({ task_id: 't', status: 'completed' });
    const ts = Math.floor(Date.now() / 1000);
    const signed = {
      'webhook-id': 'e1',
      'webhook-timestamp': String(ts),
      'webhook-signature': signatureHeader([secret], 'e1', ts, body),
    };
    expect(verifyWebhook(secret, signed, body)).toEqual(new Webhook(secret).verify(body, signed));
  });

  it('refuses a body that is not JSON even when signed', () => {
    const secret = 'whsec_' + Buffer.alloc(24, 1).toString('base64');
    const ts = Math.floor(Date.now() / 1000);
    expect(
      reason(() =>
        verifyWebhook(
          secret,
          {
            'webhook-id': 'e',
            'webhook-timestamp': String(ts),
            'webhook-signature': signatureHeader([secret], 'e', ts, 'not json'),
          },
          'not json',
        ),
      ),
    ).toBe('invalid_json');
  });
});

describe('verifyLegacySignature', () => {
  it('checks X-Signature: sha256=<hex>', () => {
    const secret = 'whsec_' + Buffer.alloc(24, 3).toString('base64');
    expect(verifyLegacySignature(secret, signLegacy(secret, '{"a":1}'), '{"a":1}')).toBe(true);
    expect(verifyLegacySignature(secret, signLegacy(secret, '{"a":1}'), '{"a":2}')).toBe(false);
    expect(verifyLegacySignature(secret, undefined, '{"a":1}')).toBe(false);
  });
});
