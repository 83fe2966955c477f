import type { FieldError } from '../common/errors.js';

export const MAX_WEBHOOK_HEADERS = 20;
export const MAX_HEADER_VALUE_LENGTH = 1_024;

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RESERVED = new Set([
  'host',
  'content-length',
  'content-type',
  'transfer-encoding',
  'connection',
  'te',
  'upgrade',
  'x-signature',
  'user-agent',
  'keep-alive',
  'trailer',
  'expect',
]);

// RFC 9110 field-value characters: visible ASCII, space, tab and obs-text (U+0080-U+00FF), the set undici sends.
// No CR, LF or other control characters (header injection), nothing above U+00FF (it cannot be put on the wire).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
export const HEADER_VALUE_RULE =
  'header value may hold only visible ASCII, spaces, tabs and Latin-1 characters (up to U+00FF): no CR, LF, control characters, emoji or other characters above U+00FF';

/** Whether a header value can be sent as it is (RFC 9110 field-value, as undici checks it). */
export function isSendableHeaderValue(value: string): boolean {
  return FIELD_VALUE.test(value);
}

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
    if (!TOKEN.test(name) || name.length > 256)
      errors.push({ field: at, message: "header name must be an HTTP token (letters, digits and !#$%&'*+.^_`|~-)" });
    else if (isReservedHeader(name))
      errors.push({ field: at, message: `header ${name} is reserved and set by Herald` });
    else if (seen.has(name.toLowerCase()))
      errors.push({ field: at, message: 'header name appears twice (names are case-insensitive)' });
    seen.add(name.toLowerCase());
    if (typeof value !== 'string') errors.push({ field: at, message: 'header value must be a string' });
    else if (value.length > MAX_HEADER_VALUE_LENGTH)
      errors.push({ field: at, message: `header value must be at most ${MAX_HEADER_VALUE_LENGTH} characters` });
    else if (!isSendableHeaderValue(value)) errors.push({ field: at, message: HEADER_VALUE_RULE });
  }
  return errors;
}

/** Header names with values masked, for every response and log line. */
export function redactHeaders(names: readonly string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, '***']));
}
