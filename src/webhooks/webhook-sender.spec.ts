import { describe, expect, it } from 'vitest';
import { parseCidrs } from './address-policy.js';
import { guardedLookup } from './webhook-sender.js';

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
