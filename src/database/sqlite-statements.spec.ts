import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { withStatementCache } from './sqlite-statements.js';

type CachingDatabase = sqlite3.Database & { readonly prepared: number };

const cached = withStatementCache(sqlite3, { statements: 3, chars: 200 });
let dir: string;
let db: CachingDatabase;

function open(): Promise<CachingDatabase> {
  return new Promise((resolve, reject) => {
    const opened = new cached.Database(path.join(dir, 'db.sqlite'), (err) =>
      err ? reject(err) : resolve(opened as CachingDatabase),
    );
  });
}
const exec = (sql: string) => new Promise<void>((resolve, reject) => db.exec(sql, (e) => (e ? reject(e) : resolve())));
const all = (sql: string, params: unknown[] = []) =>
  new Promise<unknown[]>((resolve, reject) => db.all(sql, params, (e, rows) => (e ? reject(e) : resolve(rows))));
const run = (sql: string, params: unknown[] = []) =>
  new Promise<{ lastID: number; changes: number }>((resolve, reject) =>
    db.run(sql, params, function (e) {
      if (e) reject(e);
      else resolve({ lastID: this.lastID, changes: this.changes });
    }),
  );
/** A statement is prepared alongside its first run: waits (bounded) until `ready` holds. */
async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ready(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'herald-statements-'));
  db = await open();
  await exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)');
});
afterEach(async () => {
  await new Promise<void>((resolve, reject) => db.close((e) => (e ? reject(e) : resolve())));
  rmSync(dir, { recursive: true, force: true });
});

describe('SQLite statements kept prepared', () => {
  it('answers a text again from its prepared statement, with its rows, lastID and changes', async () => {
    expect(await run('INSERT INTO t (v) VALUES (?)', ['a'])).toEqual({ lastID: 1, changes: 1 });
    await until(() => db.prepared === 1);
    expect(db.prepared).toBe(1);
    expect(await run('INSERT INTO t (v) VALUES (?)', ['b'])).toEqual({ lastID: 2, changes: 1 });
    expect(await run('UPDATE t SET v = v || ? WHERE id >= ?', ['!', 1])).toMatchObject({ changes: 2 });
    await all('SELECT v FROM t WHERE id >= ? ORDER BY id', [0]);
    await until(() => db.prepared === 3);
    expect(await all('SELECT v FROM t WHERE id >= ? ORDER BY id', [2])).toEqual([{ v: 'b!' }]);
    expect(await all('SELECT v FROM t WHERE id >= ? ORDER BY id', [1])).toEqual([{ v: 'a!' }, { v: 'b!' }]);
    expect(await all('/* returning */ UPDATE t SET v = ? WHERE id = ? RETURNING id', ['c', 2])).toEqual([{ id: 2 }]);
  });

  it('runs concurrent calls of one text each with its own parameters', async () => {
    for (const v of ['a', 'b', 'c']) await run('INSERT INTO t (v) VALUES (?)', [v]);
    const ids = [1, 2, 3, 1, 2, 3];
    const rows = await Promise.all(ids.map((id) => all('SELECT v FROM t WHERE id = ?', [id])));
    expect(rows).toEqual(['a', 'b', 'c', 'a', 'b', 'c'].map((v) => [{ v }]));
  });

  it('reports a failing statement every time and keeps working after it', async () => {
    await run('INSERT INTO t (v) VALUES (?)', ['a']);
    for (let i = 0; i < 3; i++) {
      await expect(run('INSERT INTO t (v) VALUES (?)', ['a'])).rejects.toThrow(/UNIQUE constraint failed/);
      await expect(all('SELEC nonsense')).rejects.toThrow(/syntax error/);
      await until(() => db.prepared === 1);
    }
    expect(await run('INSERT INTO t (v) VALUES (?)', ['b'])).toMatchObject({ changes: 1 });
  });

  it('rolls back a transaction whose statement failed on a prepared statement', async () => {
    await run('INSERT INTO t (v) VALUES (?)', ['a']);
    await run('UPDATE t SET v = ? WHERE id = ?', ['a', 1]);
    await until(() => db.prepared === 2);
    await exec('BEGIN IMMEDIATE');
    await run('UPDATE t SET v = ? WHERE id = ?', ['z', 1]);
    await expect(run('INSERT INTO t (v) VALUES (?)', ['z'])).rejects.toThrow(/UNIQUE/);
    await exec('ROLLBACK');
    expect(await all('SELECT v FROM t')).toEqual([{ v: 'a' }]);
  });

  it('keeps at most its size of statements', async () => {
    for (let i = 0; i < 6; i++) await all(`SELECT ${i} AS n FROM t`);
    await until(() => db.prepared === 3);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(db.prepared).toBe(3);
    for (let i = 0; i < 6; i++) expect(await all(`SELECT ${i} AS n`)).toEqual([{ n: i }]);
  });

  it('keeps at most its budget of text, and never a text longer than that', async () => {
    const long = (n: number) => `SELECT ${n} AS n${' '.repeat(80)}`; // 94 characters: two fit in 200
    for (let i = 0; i < 3; i++) await all(long(i));
    await until(() => db.prepared === 2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(db.prepared).toBe(2);
    await all(`SELECT 1 AS n${' '.repeat(300)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(db.prepared).toBe(2);
  });

  it('does not keep DDL or PRAGMA statements', async () => {
    await run('CREATE TABLE u (id INTEGER PRIMARY KEY)');
    await all('PRAGMA user_version');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(db.prepared).toBe(0);
  });
});
