import { createHmac, timingSafeEqual } from 'node:crypto';

// The signing primitives of Standard Webhooks, shared by Herald's sender (webhooks/signature.ts) and the verifier it
// ships to receivers (herald/verify), so the two cannot drift. node:crypto only: verify.ts is used outside Herald.

const SECRET_PREFIX = 'whsec_';

/** The HMAC key of a `whsec_…` secret: the base64 after the prefix, decoded (as the Standard Webhooks libraries do). */
export function secretKey(secret: string): Buffer {
  const body = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(body, 'base64');
}

/** The base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`: a `v1,` signature without its prefix. */
export function standardSignature(
  secret: string,
  msgId: string,
  timestamp: number | string,
  body: string | Uint8Array,
): string {
  const mac = createHmac('sha256', secretKey(secret));
  mac.update(`${msgId}.${timestamp}.`);
  mac.update(body);
  return mac.digest('base64');
}

/** The compatibility `X-Signature` value of seeds 000 and 003: `sha256=<hex HMAC-SHA256(key, body)>`. */
export function legacySignature(secret: string, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secretKey(secret)).update(body).digest('hex')}`;
}

/** Constant-time comparison of two strings (false on any length difference). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
