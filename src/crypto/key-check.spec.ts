import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { judgeKey, keyCheckValue, keyMatchesCheck, mismatchMessage } from './key-check.js';

describe('encryption key check', () => {
  const key = randomBytes(32);
  const other = randomBytes(32);

  it('recognises the key it was made from, and no other', () => {
    const check = keyCheckValue(key);
    expect(keyMatchesCheck(key, check)).toBe(true);
    expect(keyMatchesCheck(other, check)).toBe(false);
    expect(keyMatchesCheck(key, 'v1.short')).toBe(false);
    // Reveals nothing of the key itself.
    expect(check).not.toContain(key.toString('base64url'));
  });

  it('decides by the check value when there is one, else by a stored sealed value, else records the key', () => {
    expect(judgeKey(key, keyCheckValue(key), undefined)).toBe('matches');
    expect(judgeKey(other, keyCheckValue(key), true)).toBe('mismatch');
    expect(judgeKey(key, undefined, true)).toBe('record');
    expect(judgeKey(key, undefined, false)).toBe('mismatch');
    expect(judgeKey(key, undefined, undefined)).toBe('record');
  });

  it('refuses in one line that names ENCRYPTION_KEY and DATA_DIR, whichever way the key came', () => {
    for (const source of [
      { kind: 'env' as const },
      { kind: 'file' as const, file: '/d/encryption.key' },
      { kind: 'new' as const, file: '/d/encryption.key' },
    ]) {
      const line = mismatchMessage(source, '/d', 'postgres://db:5432/herald');
      expect(line).not.toContain('\n');
      expect(line).toContain('ENCRYPTION_KEY');
      expect(line).toContain('DATA_DIR');
      expect(line).toContain('postgres://db:5432/herald');
    }
    expect(mismatchMessage({ kind: 'new', file: '/d/encryption.key' }, '/d', 'sqlite:/d/herald.sqlite')).toContain(
      'no new key was saved',
    );
  });
});
