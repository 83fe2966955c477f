import { createHmac } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { safeEqual, secretKey, signatureHeader, signLegacy, signStandard } from './signature.js';

// The Standard Webhooks reference test vector (standard-webhooks/standard-webhooks, libraries' tests).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  msgId: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

describe('signatures', () => {
  it('matches the Standard Webhooks test vector', () => {
    expect(signStandard(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
  });

  it('is accepted by the official standardwebhooks verifier', () => {
    const secret = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
    const body = JSON.stringify({ task_id: 't', status: 'completed' });
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      'webhook-id': 'evt_1',
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader([secret], 'evt_1', timestamp, body),
    };
    expect(new Webhook(secret).verify(body, headers)).toEqual({ task_id: 't', status: 'completed' });
  });

  it('lists one signature per secret during rotation, each verifiable on its own', () => {
    const a = 'whsec_' + Buffer.alloc(24, 1).toString('base64');
    const b = 'whsec_' + Buffer.alloc(24, 2).toString('base64');
    const header = signatureHeader([a, b], 'm', 1, 'x');
    expect(header.split(' ')).toEqual([signStandard(a, 'm', 1, 'x'), signStandard(b, 'm', 1, 'x')]);
    for (const secret of [a, b])
      expect(() =>
        new Webhook(secret).verify('x', { 'webhook-id': 'm', 'webhook-timestamp': '1', 'webhook-signature': header }),
      ).toThrow(/timestamp/i);
  });

  it('changes when any of id, timestamp or body is tampered with', () => {
    const base = signStandard(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, VECTOR.payload);
    expect(signStandard(VECTOR.secret, 'msg_other', VECTOR.timestamp, VECTOR.payload)).not.toBe(base);
    expect(signStandard(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp + 1, VECTOR.payload)).not.toBe(base);
    expect(signStandard(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, VECTOR.payload + ' ')).not.toBe(base);
  });

  it('signs the legacy X-Signature with the same key bytes as hex', () => {
    const expected = 'sha256=' + createHmac('sha256', secretKey(VECTOR.secret)).update(VECTOR.payload).digest('hex');
    expect(signLegacy(VECTOR.secret, VECTOR.payload)).toBe(expected);
  });

  it('compares in constant time and rejects different lengths', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abd')).toBe(false);
    expect(safeEqual('abc', 'abcd')).toBe(false);
  });
});
