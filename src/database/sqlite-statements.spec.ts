import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collapseLists, withStatementCache } from './sqlite-statements.js';

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

describe('collapseLists', () => {
  const cb = () => undefined;
  const sql = (n: number) => Array.from({ length: n }, () => '?').join(', ');
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);

  it('sends a list of placeholders as one JSON array, the placeholders around it kept in place', () => {
    const [text, args] = collapseLists('SELECT * FROM t WHERE a = ? AND id IN (?, ?, ?) AND b = ?', [
      [1, 'x', 'y', null, 2],
      cb,
    ]);
    expect(text).toBe('SELECT * FROM t WHERE a = ? AND id IN (SELECT value FROM json_each(?)) AND b = ?');
    expect(args).toEqual([[1, '["x","y",null]', 2], cb]);
  });

  it('leaves quoted text, single placeholders, lists JSON would change, and miscounted texts as they are', () => {
    const keep = (sql: string, params: unknown[]) =>
      expect(collapseLists(sql, [params, cb])).toEqual([sql, [params, cb]]);
    keep('SELECT * FROM t WHERE v IN (?)', ['a']);
    keep("SELECT 'IN (?, ?)' AS q, id FROM t WHERE id IN (?, ?)", ['nul \0', 'b']);
    keep('SELECT * FROM t WHERE v IN (?, ?)', ['lone \ud800', 'b']);
    keep('SELECT * FROM t WHERE v IN (?, ?)', [new Date(0), 1]);
    keep('SELECT * FROM t WHERE v IN (?, ?)', [Number.NaN, 1]);
    keep('SELECT * FROM t WHERE v IN (?, ?)', ['only one']);
    const [text, args] = collapseLists(`SELECT "a?" FROM t WHERE v = '?' AND id IN (?, ?)`, [[1, 2], cb]);
    expect(text).toBe(`SELECT "a?" FROM t WHERE v = '?' AND id IN (SELECT value FROM json_each(?))`);
    expect(args[0]).toEqual(['[1,2]']);
  });

  it('on real SQLite: the same rows as the bound list; one text for every length', async () => {
    for (let i = 1; i <= 6; i++) await run('INSERT INTO t (id, v) VALUES (?, ?)', [i, `v${i}`]);
    const ids = (rows: unknown[]) => rows.map((r) => (r as { id: number }).id);
    expect(ids(await all('SELECT id FROM t WHERE v IN (?, ?, ?) ORDER BY id', ['v2', 'v5', 'none']))).toEqual([2, 5]);
    expect(ids(await all('SELECT id FROM t WHERE id IN (?, ?) ORDER BY id', ['3', 4]))).toEqual([3, 4]);
    expect(ids(await all('SELECT id FROM t WHERE id NOT IN (?, ?, ?, ?) ORDER BY id', [1, 2, 3, 4]))).toEqual([5, 6]);
    expect((await run('UPDATE t SET v = v || ? WHERE id IN (?, ?, ?)', ['!', 1, 2, 9])).changes).toBe(2);
    const textOf = (n: number) => collapseLists(`SELECT id FROM t WHERE id IN (${sql(n)})`, [range(n), cb])[0];
    expect(textOf(5)).toBe(textOf(2));
  });
});
