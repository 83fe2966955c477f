/**
 * Verifying Herald webhooks, with nothing but node:crypto — usable from plain Node, Express, Fastify, Next.js…
 *
 *   import { verifyWebhook } from 'herald/verify';
 *   const event = verifyWebhook(process.env.HERALD_WEBHOOK_SECRET, req.headers, rawBody);
 *   // or several secrets (the tenant's and registered endpoints'): any one of them verifies
 *   const event = verifyWebhook([tenantSecret, endpointSecret], req.headers, rawBody);
 */
import { legacySignature, safeEqual, standardSignature } from './standard-webhooks.js';

export type VerificationFailure =
  | 'missing_header'
  | 'invalid_timestamp'
  | 'timestamp_too_old'
  | 'timestamp_too_new'
  | 'invalid_signature'
  | 'invalid_json';

/** Why a webhook was refused; `reason` is stable, `message` is for people. */
export class WebhookVerificationError extends Error {
  constructor(
    readonly reason: VerificationFailure,
    message: string,
  ) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

/** Node's IncomingHttpHeaders (any case, string or string[]) or a WHATWG Headers object. */
export type HeaderSource = { get(name: string): string | null } | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** How far the webhook-timestamp may be from now, in either direction. Default 300 s. */
  toleranceSeconds?: number;
  /** The current time in ms (tests). */
  now?: number;
}

function readHeader(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function')
    return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

function text(body: string | Uint8Array): string {
  return typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
}

/**
 * Checks a Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`: any one of the
 * space-separated `v1,<base64>` entries may match, as during a secret rotation) and the timestamp window, then
 * returns the parsed event. Throws WebhookVerificationError otherwise. Pass the raw body, not re-serialized JSON.
 *
 * `secret` may be several secrets: a webhook signed with any one of them verifies. A receiver that takes both
 * `webhook_url` deliveries (signed with the tenant secret) and a registered endpoint's (signed with that
 * endpoint's own secret) passes both; `matchWebhook` also says which one matched.
 */
export function verifyWebhook<T = unknown>(
  secret: string | readonly string[],
  headers: HeaderSource,
  rawBody: string | Uint8Array,
  options: VerifyOptions = {},
): T {
  return matchWebhook<T>(secret, headers, rawBody, options).event;
}

/** As verifyWebhook, and answers the index (in `secrets`) of the first secret the signature matched. */
export function matchWebhook<T = unknown>(
  secrets: string | readonly string[],
  headers: HeaderSource,
  rawBody: string | Uint8Array,
  options: VerifyOptions = {},
): { event: T; secretIndex: number } {
  const candidates = typeof secrets === 'string' ? [secrets] : secrets;
  if (candidates.length === 0) throw new TypeError('verifyWebhook needs at least one secret');
  const id = readHeader(headers, 'webhook-id');
  const timestamp = readHeader(headers, 'webhook-timestamp');
  const signatures = readHeader(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError(
      'missing_header',
      'webhook-id, webhook-timestamp and webhook-signature headers are required',
    );
  }
  if (!/^\d+$/.test(timestamp))
    throw new WebhookVerificationError('invalid_timestamp', `webhook-timestamp "${timestamp}" is not unix seconds`);
  const tolerance = options.toleranceSeconds ?? 300;
  const skew = Number(timestamp) - Math.floor((options.now ?? Date.now()) / 1000);
  if (skew < -tolerance)
    throw new WebhookVerificationError(
      'timestamp_too_old',
      `webhook-timestamp is ${-skew} s old (tolerance ${tolerance} s)`,
    );
  if (skew > tolerance)
    throw new WebhookVerificationError(
      'timestamp_too_new',
      `webhook-timestamp is ${skew} s in the future (tolerance ${tolerance} s)`,
    );
  const body = text(rawBody);
  const given = signatures
    .split(' ')
    .map((s) => s.split(','))
    .filter(([version, signature]) => version === 'v1' && signature !== undefined)
    .map(([, signature]) => signature);
  const secretIndex = candidates.findIndex((secret) => {
    const expected = standardSignature(secret, id, timestamp, body);
    return given.some((signature) => safeEqual(signature, expected));
  });
  if (secretIndex < 0) {
    const which = candidates.length === 1 ? 'this secret' : `any of the ${candidates.length} secrets`;
    throw new WebhookVerificationError('invalid_signature', `no webhook-signature entry matches ${which} and body`);
  }
  try {
    return { event: JSON.parse(body) as T, secretIndex };
  } catch {
    throw new WebhookVerificationError('invalid_json', 'the body is not JSON');
  }
}

/** Checks the compatibility header `X-Signature: sha256=<hex HMAC-SHA256 of the body>` (seeds 000 and 003). */
export function verifyLegacySignature(
  secret: string,
  signatureHeader: string | undefined,
  rawBody: string | Uint8Array,
): boolean {
  if (!signatureHeader?.startsWith('sha256=')) return false;
  return safeEqual(signatureHeader, legacySignature(secret, text(rawBody)));
}
