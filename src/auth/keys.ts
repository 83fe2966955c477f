import { createHash, randomBytes } from 'node:crypto';

/** API keys: `hk_` + 32 random bytes base64url. Stored only as SHA-256. */
export function generateApiKey(): string {
  return 'hk_' + randomBytes(32).toString('base64url');
}

/** Worker tokens: `hw_` + 32 random bytes base64url, stored the same way as API keys. */
export function generateWorkerToken(): string {
  return 'hw_' + randomBytes(32).toString('base64url');
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function keyPrefix(key: string): string {
  return key.slice(0, 10);
}

/** Signing secrets in the Standard Webhooks form: `whsec_` + base64 of 32 random bytes. */
export function generateWebhookSecret(): string {
  return 'whsec_' + randomBytes(32).toString('base64');
}

/** Reads the bearer token from an Authorization header value; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
