import type { FieldError } from '../common/errors.js';

export const MAX_WEBHOOK_HEADERS = 20;
export const MAX_HEADER_VALUE_LENGTH = 1_024;

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RESERVED = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'te', 'upgrade', 'x-signature', 'user-agent', 'keep-alive', 'trailer', 'expect']);

export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return RESERVED.has(lower) || lower.startsWith('proxy-') || lower.startsWith('webhook-');
}

/** Checks a caller's webhook_headers map; returns one error per bad entry (empty when valid). */
export function webhookHeaderErrors(headers: Record<string, unknown>, field = 'webhook_headers'): FieldError[] {
  const errors: FieldError[] = [];
  const entries = Object.entries(headers);
  if (entries.length > MAX_WEBHOOK_HEADERS) {
    errors.push({ field, message: `at most ${MAX_WEBHOOK_HEADERS} headers are allowed (got ${entries.length})` });
  }
  const seen = new Set<string>();
  for (const [name, value] of entries) {
    const at = `${field}.${name}`;
    if (!TOKEN.test(name) || name.length > 256) errors.push({ field: at, message: 'header name must be an HTTP token (letters, digits and !#$%&\'*+.^_`|~-)' });
    else if (isReservedHeader(name)) errors.push({ field: at, message: `header ${name} is reserved and set by Herald` });
    else if (seen.has(name.toLowerCase())) errors.push({ field: at, message: 'header name appears twice (names are case-insensitive)' });
    seen.add(name.toLowerCase());
    if (typeof value !== 'string') errors.push({ field: at, message: 'header value must be a string' });
    else if (value.length > MAX_HEADER_VALUE_LENGTH) errors.push({ field: at, message: `header value must be at most ${MAX_HEADER_VALUE_LENGTH} characters` });
    // Visible ASCII, space and tab, plus obs-text; never CR, LF or other controls (header injection).
    else if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) errors.push({ field: at, message: 'header value must not contain CR, LF or control characters' });
  }
  return errors;
}

/** Header names with values masked, for every response and log line. */
export function redactHeaders(names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, '***']));
}
