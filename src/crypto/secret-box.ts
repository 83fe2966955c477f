import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const VERSION = 'v1';

/** AES-256-GCM for secrets at rest (webhook header values, signing secrets). Output: `v1.<iv>.<tag>.<ciphertext>` in base64url. */
export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('encryption key must be 32 bytes');
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [
      VERSION,
      iv.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
      body.toString('base64url'),
    ].join('.');
  }

  /** The plaintext; throws SealedValueError when the value was sealed with another key or is damaged. */
  decrypt(sealed: string): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== VERSION || !iv || !tag || body === undefined)
      throw new SealedValueError('the stored value is not a sealed value (damaged)');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SealedValueError(
        'the sealed value does not decrypt with this ENCRYPTION_KEY (sealed with another key, or damaged)',
      );
    }
  }
}

/** A stored secret that cannot be opened: no retry can change that, so whoever needs it fails for good. */
export class SealedValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealedValueError';
  }
}

/** Where a generated key is kept: `DATA_DIR/encryption.key`. */
export function keyFilePath(dataDir: string): string {
  return path.join(dataDir, 'encryption.key');
}

/** The key in a key file, or undefined when there is none. */
export function readKeyFile(file: string): Buffer | undefined {
  return existsSync(file) ? Buffer.from(readFileSync(file, 'utf8').trim(), 'base64') : undefined;
}

/** Saves a newly generated key (mode 0600); false when the file exists already (another process made one first). */
export function saveNewKey(file: string, key: Buffer): boolean {
  mkdirSync(path.dirname(file), { recursive: true });
  try {
    writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** The configured key, or one generated once into the data dir (mode 0600) so a single node works with no setup. */
export function loadOrCreateKey(configured: Buffer | undefined, dataDir: string): Buffer {
  if (configured) return configured;
  const file = keyFilePath(dataDir);
  const existing = readKeyFile(file);
  if (existing) return existing;
  const key = randomBytes(32);
  return saveNewKey(file, key) ? key : readKeyFile(file)!;
}
