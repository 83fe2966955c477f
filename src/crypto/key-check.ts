import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { DataSource } from 'typeorm';
import { ConfigError, type HeraldConfig } from '../config/config.js';
import { dataSourceOptions, describeDatabase, openDatabase } from '../database/data-source.js';
import { keyFilePath, readKeyFile, saveNewKey, SecretBox } from './secret-box.js';

const CHECK_NAME = 'encryption_key_check';
const CHECK_TEXT = 'herald encryption key check';

/** What the database keeps to recognise its key: an HMAC of a fixed text, which tells keys apart and reveals neither. */
export function keyCheckValue(key: Buffer): string {
  return `v1.${createHmac('sha256', key).update(CHECK_TEXT).digest('base64url')}`;
}

export function keyMatchesCheck(key: Buffer, check: string): boolean {
  const ours = Buffer.from(keyCheckValue(key));
  const theirs = Buffer.from(check);
  return ours.length === theirs.length && timingSafeEqual(ours, theirs);
}

/** Where this start's key came from, which the refusal names so the operator knows what to change. */
export type KeySource = { kind: 'env' } | { kind: 'file'; file: string } | { kind: 'new'; file: string };

/**
 * Whether a key may be used with a database: its check value decides; without one (a database from before the
 * check, or a fresh one), a stored sealed value that opens or fails to open does; with neither, the key is new.
 */
export function judgeKey(
  key: Buffer,
  check: string | undefined,
  sampleOpens: boolean | undefined,
): 'matches' | 'record' | 'mismatch' {
  if (check !== undefined) return keyMatchesCheck(key, check) ? 'matches' : 'mismatch';
  return sampleOpens === false ? 'mismatch' : 'record';
}

/** The one line a refused start prints (after `herald: `): what is wrong, and the two ways to put it right. */
export function mismatchMessage(source: KeySource, dataDir: string, database: string): string {
  const fix = 'Set ENCRYPTION_KEY to that key, or DATA_DIR to the directory holding its encryption.key';
  if (source.kind === 'new') {
    return `ENCRYPTION_KEY is not set and DATA_DIR (${dataDir}) holds no encryption.key, but the database (${database}) was written with a key; refusing to start with a new one. ${fix} (no new key was saved).`;
  }
  const which = source.kind === 'env' ? 'ENCRYPTION_KEY is not' : `the key in DATA_DIR (${source.file}) is not`;
  return `${which} the key the database (${database}) was written with, so its stored secrets cannot be opened; refusing to start. ${fix}.`;
}

export class EncryptionKeyMismatch extends ConfigError {}

/** The check value and one sealed value of the database, read and written with plain SQL (both dialects). */
class KeyCheckStore {
  private readonly postgres: boolean;
  constructor(private readonly ds: DataSource) {
    this.postgres = ds.options.type === 'postgres';
  }

  private p(n: number): string {
    return this.postgres ? `$${n}` : '?';
  }

  async read(): Promise<string | undefined> {
    const rows = await this.ds.query<Array<{ value: string }>>(
      `SELECT value FROM herald_meta WHERE name = ${this.p(1)}`,
      [CHECK_NAME],
    );
    return rows[0]?.value;
  }

  /** Writes the check value unless another process wrote one first; answers the value now stored. */
  async record(value: string): Promise<string | undefined> {
    await this.ds.query(
      `INSERT INTO herald_meta (name, value) VALUES (${this.p(1)}, ${this.p(2)}) ON CONFLICT (name) DO NOTHING`,
      [CHECK_NAME, value],
    );
    return this.read();
  }

  /** One value sealed by an earlier Herald, if the database holds any (every tenant has a sealed signing secret). */
  async sealedSample(): Promise<string | undefined> {
    for (const [table, column] of [
      ['tenants', 'webhook_secret'],
      ['webhook_endpoints', 'secret_sealed'],
      ['deliveries', 'headers_sealed'],
      ['tasks', 'webhook_headers'],
    ]) {
      const rows = await this.ds.query<Array<{ sealed: string }>>(
        `SELECT ${column} AS sealed FROM ${table} WHERE ${column} IS NOT NULL LIMIT 1`,
      );
      if (rows[0]?.sealed) return rows[0].sealed;
    }
    return undefined;
  }
}

function opens(key: Buffer, sealed: string): boolean {
  try {
    new SecretBox(key).decrypt(sealed);
    return true;
  } catch {
    return false;
  }
}

/**
 * The encryption key for this database: ENCRYPTION_KEY, else DATA_DIR/encryption.key, else (with `generate`) a new
 * one. Throws EncryptionKeyMismatch when the database was written with another key. A new key is saved to DATA_DIR
 * only once it is known to fit, so a start refused for want of the right key leaves no stray key file to trip on
 * the next time. Without `generate` and with no key, answers undefined and checks nothing (`herald migrate`).
 */
export async function ensureEncryptionKey(
  config: HeraldConfig,
  ds: DataSource,
  { generate = true } = {},
): Promise<Buffer | undefined> {
  const file = keyFilePath(config.dataDir);
  const fromFile = config.encryptionKey ? undefined : readKeyFile(file);
  if (!config.encryptionKey && !fromFile && !generate) return undefined;
  const key = config.encryptionKey ?? fromFile ?? randomBytes(32);
  const source: KeySource = config.encryptionKey
    ? { kind: 'env' }
    : fromFile
      ? { kind: 'file', file }
      : { kind: 'new', file };
  const refuse = () => new EncryptionKeyMismatch(mismatchMessage(source, config.dataDir, describeDatabase(ds.options)));

  const store = new KeyCheckStore(ds);
  const check = await store.read();
  const sample = check === undefined ? await store.sealedSample() : undefined;
  const verdict = judgeKey(key, check, sample === undefined ? undefined : opens(key, sample));
  if (verdict === 'mismatch') throw refuse();
  // Another process sharing DATA_DIR saved its new key first: use that one (checked the same way).
  if (source.kind === 'new' && !saveNewKey(file, key)) return ensureEncryptionKey(config, ds, { generate });
  if (verdict === 'record') {
    const stored = await store.record(keyCheckValue(key));
    // Two first starts with different keys raced, and the other one's check value won.
    if (stored === undefined || !keyMatchesCheck(key, stored)) {
      if (source.kind === 'new') rmSync(file, { force: true });
      throw refuse();
    }
  }
  return key;
}

/** Before anything else starts: the database is migrated and its key checked (and recorded on a first start). */
export async function checkEncryptionKey(config: HeraldConfig): Promise<void> {
  const ds = await openDatabase(dataSourceOptions(config), { migrate: true });
  try {
    await ensureEncryptionKey(config, ds);
  } finally {
    await ds.destroy();
  }
}
