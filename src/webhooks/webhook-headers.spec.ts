import { describe, expect, it } from 'vitest';
import { redactHeaders, webhookHeaderErrors } from './webhook-headers.js';

describe('webhook header rules', () => {
  it('accepts ordinary custom headers', () => {
    expect(
      webhookHeaderErrors({ Authorization: 'Bearer your-webhook-secret', 'X-Custom-Header': 'custom-value' }),
    ).toEqual([]);
  });

  it.each([
    'Host',
    'content-length',
    'Content-Type',
    'Transfer-Encoding',
    'Connection',
    'TE',
    'Upgrade',
    'Proxy-Authorization',
    'webhook-id',
    'Webhook-Signature',
    'X-Signature',
  ])('refuses the reserved header %s', (name) => {
    expect(webhookHeaderErrors({ [name]: 'x' })[0].field).toBe(`webhook_headers.${name}`);
  });

  it('refuses names that are not tokens, CR/LF in values, long values and non-strings', () => {
    expect(webhookHeaderErrors({ 'Bad Name': 'x' })).toHaveLength(1);
    expect(webhookHeaderErrors({ 'X-A': 'a\nb' })).toHaveLength(1);
    expect(webhookHeaderErrors({ 'X-A': 'a\rb' })).toHaveLength(1);
    expect(webhookHeaderErrors({ 'X-A': 'x'.repeat(1_025) })).toHaveLength(1);
    expect(webhookHeaderErrors({ 'X-A': 5 })).toHaveLength(1);
    expect(webhookHeaderErrors({ 'X-A': 'x'.repeat(1_024) })).toEqual([]);
  });

  it('refuses values that cannot be sent: above U+00FF, controls, DEL; accepts tab and Latin-1', () => {
    for (const bad of ['a\u2028b', 'emoji \u{1F600}', 'caf\u0100', 'a\u0000b', 'a\u001bb', 'a\u007fb']) {
      expect(webhookHeaderErrors({ 'X-Foo': bad }), JSON.stringify(bad)).toEqual([
        { field: 'webhook_headers.X-Foo', message: expect.stringContaining('U+00FF') },
      ]);
    }
    expect(webhookHeaderErrors({ 'X-Foo': 'bad\u2028' }, 'headers')[0].field).toBe('headers.X-Foo');
    expect(webhookHeaderErrors({ 'X-A': 'tab\there', 'X-B': 'caf\u00e9 \u00ff', 'X-C': '' })).toEqual([]);
  });

  it('allows at most 20 headers and no duplicate names', () => {
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`X-H${i}`, 'v']));
    expect(webhookHeaderErrors(many)[0].field).toBe('webhook_headers');
    expect(webhookHeaderErrors({ 'X-A': '1', 'x-a': '2' })).toHaveLength(1);
  });

  it('masks every value', () => {
    expect(redactHeaders(['Authorization', 'X-Key'])).toEqual({ Authorization: '***', 'X-Key': '***' });
  });
});
