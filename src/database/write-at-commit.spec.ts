import sqlite3 from 'sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import { inlineParams } from './sql.js';
import { flushAtCommit, UnitOfWork, writeAtCommit } from './unit-of-work.js';

describe('inlineParams', () => {
  it('writes each ? as a literal, leaving quoted strings, quoted names and comments alone', () => {
    expect(inlineParams(`/* ? */ UPDATE t SET a = ?, "b?" = 'x?' WHERE id IN (?, ?) -- ?`, [1.5, "it's", null])).toBe(
      `/* ? */ UPDATE t SET a = 1.5, "b?" = 'x?' WHERE id IN ('it''s', NULL) -- ?`,
    );
    expect(inlineParams('SELECT ?, ?', [true, false])).toBe('SELECT 1, 0');
  });

  it('answers undefined for a value without a plain literal, or counts that differ', () => {
    expect(inlineParams('SELECT ?', ['NUL \u0000'])).toBeUndefined();
    expect(inlineParams('SELECT ?', ['a lone \uD800'])).toBeUndefined();
    expect(inlineParams('SELECT ?', [Number.NaN])).toBeUndefined();
    expect(inlineParams('SELECT ?', [new Date()])).toBeUndefined();
    expect(inlineParams('SELECT ?', [Buffer.from('x')])).toBeUndefined();
    expect(inlineParams('SELECT ?, ?', [1])).toBeUndefined();
    expect(inlineParams('SELECT ?', [1, 2])).toBeUndefined();
  });
});

describe('writeAtCommit (real SQLite, through UnitOfWork)', () => {
  const db = new DataSource({ type: 'sqlite', database: ':memory:', driver: sqlite3 });
  const uow = new UnitOfWork(db);
  const odd = ['it\'s "quoted" ?', 'line\nbreak; COMMIT; --', '✓ 🎞 \u{1F600}', ''];
  beforeAll(async () => {
    await db.initialize();
    await db.query('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL)');
  });
  afterAll(() => db.destroy());
  const rows = () => db.query<Array<{ id: number; v: string | null; n: number | null }>>('SELECT * FROM t ORDER BY id');

  it('holds the write until the COMMIT, which stores every value exactly as a bound one would be', async () => {
    await uow.run(async (em) => {
      for (const [i, v] of odd.entries())
        await writeAtCommit(em, 'INSERT INTO t (id, v, n) VALUES (?, ?, ?)', [i, v, i / 3]);
      expect(await em.query('SELECT COUNT(*) AS c FROM t')).toEqual([{ c: 0 }]);
    });
    expect(await rows()).toEqual(odd.map((v, i) => ({ id: i, v, n: i / 3 })));
  });

  it('sends the held writes before a statement that must see them (flushAtCommit)', async () => {
    await uow.run(async (em) => {
      await writeAtCommit(em, 'UPDATE t SET v = ? WHERE id = ?', ['flushed', 0]);
      await flushAtCommit(em);
      expect(await em.query('SELECT v FROM t WHERE id = 0')).toEqual([{ v: 'flushed' }]);
    });
    expect((await rows())[0].v).toBe('flushed');
  });

  it('rolls the whole transaction back when a held write fails, and reports that failure', async () => {
    const before = await rows();
    await expect(
      uow.run(async (em) => {
        await em.query('UPDATE t SET v = ? WHERE id = ?', ['changed', 1]);
        await writeAtCommit(em, 'INSERT INTO t (id, v) VALUES (?, ?)', [2, 'a duplicate key']);
      }),
    ).rejects.toThrow(/UNIQUE constraint failed/);
    expect(await rows()).toEqual(before);
    // The connection is usable again: the next transaction commits.
    await uow.run((em) => writeAtCommit(em, 'UPDATE t SET v = ? WHERE id = ?', ['after', 1]));
    expect((await rows())[1].v).toBe('after');
  });

  it('runs at once a value it cannot write as a literal, and outside a UnitOfWork transaction', async () => {
    await uow.run(async (em) => {
      await writeAtCommit(em, 'UPDATE t SET v = ? WHERE id = ?', ['NUL \u0000 inside', 3]);
      expect(await em.query('SELECT length(CAST(v AS BLOB)) AS l FROM t WHERE id = 3')).toEqual([{ l: 12 }]);
    });
    await writeAtCommit(db.manager, 'UPDATE t SET v = ? WHERE id = ?', ['plain', 3]);
    expect((await rows())[3].v).toBe('plain');
  });
});
