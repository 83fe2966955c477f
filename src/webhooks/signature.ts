import { createHmac, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';

/** The HMAC key of a `whsec_…` secret: the base64 after the prefix, decoded (as the Standard Webhooks libraries do). */
export function secretKey(secret: string): Buffer {
  const body = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(body, 'base64');
}

/** Standard Webhooks v1 signature of `{id}.{timestamp}.{body}`: `v1,<base64 HMAC-SHA256>`. */
export function signStandard(secret: string, msgId: string, timestamp: number, body: string | Buffer): string {
  const mac = createHmac('sha256', secretKey(secret));
  mac.update(`${msgId}.${timestamp}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/** The `webhook-signature` header: one signature per active secret, space-separated (several during rotation). */
export function signatureHeader(secrets: readonly string[], msgId: string, timestamp: number, body: string | Buffer): string {
  return secrets.map((s) => signStandard(s, msgId, timestamp, body)).join(' ');
}

/** The compatibility `X-Signature: sha256=<hex HMAC-SHA256(key, body)>` of seeds 000 and 003. */
export function signLegacy(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secretKey(secret)).update(body).digest('hex')}`;
}

/** Constant-time comparison of two strings (false on any length difference). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
