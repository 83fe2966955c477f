import { legacySignature, standardSignature } from '../receiver/standard-webhooks.js';

// The primitives are shared with the verifier Herald ships (receiver/verify.ts), so signing and checking agree.
export { safeEqual, secretKey } from '../receiver/standard-webhooks.js';

/** Standard Webhooks v1 signature of `{id}.{timestamp}.{body}`: `v1,<base64 HMAC-SHA256>`. */
export function signStandard(secret: string, msgId: string, timestamp: number, body: string | Buffer): string {
  return `v1,${standardSignature(secret, msgId, timestamp, body)}`;
}

/** The `webhook-signature` header: one signature per active secret, space-separated (several during rotation). */
export function signatureHeader(
  secrets: readonly string[],
  msgId: string,
  timestamp: number,
  body: string | Buffer,
): string {
  return secrets.map((s) => signStandard(s, msgId, timestamp, body)).join(' ');
}

/** The compatibility `X-Signature: sha256=<hex HMAC-SHA256(key, body)>` of seeds 000 and 003. */
export function signLegacy(secret: string, body: string | Buffer): string {
  return legacySignature(secret, body);
}
