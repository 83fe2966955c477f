import { describe, expect, it } from 'vitest';
import { BLOCKED_URLS } from '../../test/support/ssrf-cases.js';
import { parseCidrs } from '../config/cidrs.js';
import { checkWebhookUrl, isAddressAllowed } from './address-policy.js';

describe('SSRF address policy', () => {
  it.each(BLOCKED_URLS)('refuses %s (%s)', (_, url) => {
    const verdict = checkWebhookUrl(url);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.blocked).toBe(true);
  });

  it.each([
    'https://example.com/hook',
    'http://8.8.8.8/',
    'https://[2606:4700:4700::1111]/x',
    'http://93.184.216.34:8080/path?q=1',
  ])('allows the public target %s', (url) => {
    expect(checkWebhookUrl(url).ok).toBe(true);
  });

  it.each([
    ['ftp://example.com/', 'must use http or https'],
    ['file:///etc/passwd', 'must use http or https'],
    ['https://user:pass@example.com/', 'must not contain credentials'],
    ['not a url', 'must be an absolute'],
    ['//example.com/hook', 'must be an absolute'],
  ])('refuses %s as invalid (not blocked)', (url, reason) => {
    const verdict = checkWebhookUrl(url);
    expect(verdict).toMatchObject({ ok: false, blocked: false });
    if (!verdict.ok) expect(verdict.reason).toContain(reason);
  });

  it('opens ranges named in WEBHOOK_ALLOWED_CIDRS, and only those', () => {
    const allowed = parseCidrs(['127.0.0.0/8', '::1/128']);
    expect(checkWebhookUrl('http://127.0.0.1:4000/hook', allowed).ok).toBe(true);
    expect(checkWebhookUrl('http://localhost:4000/hook', allowed).ok).toBe(true);
    expect(checkWebhookUrl('http://[::1]:4000/hook', allowed).ok).toBe(true);
    expect(checkWebhookUrl('http://[::ffff:127.0.0.1]/', allowed).ok).toBe(true);
    expect(checkWebhookUrl('http://10.0.0.1/', allowed).ok).toBe(false);
    expect(isAddressAllowed('169.254.169.254', allowed)).toBe(false);
  });

  it('judges resolved addresses the same way (what the connect-time lookup sees)', () => {
    expect(isAddressAllowed('10.1.2.3')).toBe(false);
    expect(isAddressAllowed('::ffff:192.168.0.1')).toBe(false);
    expect(isAddressAllowed('1.1.1.1')).toBe(true);
    expect(isAddressAllowed('not-an-ip')).toBe(false);
  });
});
