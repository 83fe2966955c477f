import sqlite3 from 'sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DataSource } from 'typeorm';
import { PG_ADMIN_URL } from '../../test/support/herald.js';
import { inlineParams } from './sql.js';
import { committedBeforeFailing, flushAtCommit, MAX_HANDED_ON, UnitOfWork, writeAtCommit } from './unit-of-work.js';

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

/** A database in memory for a describe block, set up with `schema`, and the text of every `exec` its connection runs. */
function inMemory(schema: string[]) {
  const db = new DataSource({ type: 'sqlite', database: ':memory:', driver: sqlite3 });
  const execs: string[] = [];
  beforeAll(async () => {
    await db.initialize();
    for (const statement of schema) await db.query(statement);
    const connection = (db.driver as unknown as { databaseConnection: { exec: (sql: string, cb: unknown) => void } })
      .databaseConnection;
    const exec = connection.exec.bind(connection);
    vi.spyOn(connection, 'exec').mockImplementation((sql: string, cb: unknown) => (execs.push(sql), exec(sql, cb)));
  });
  afterAll(() => db.destroy());
  return { db, uow: new UnitOfWork(db), execs };
}

describe('UnitOfWork on SQLite: the COMMIT begins the next transaction when one waits', () => {
  const { db, uow, execs } = inMemory([
    'PRAGMA foreign_keys = ON',
    'CREATE TABLE parent (id INTEGER PRIMARY KEY)',
    'CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)',
  ]);
  const ids = async () => (await db.query<Array<{ id: number }>>('SELECT id FROM parent ORDER BY id')).map((r) => r.id);

  it('commits each transaction alone, rolls back only the one that fails, and hands on at most a bounded run', async () => {
    execs.length = 0;
    const n = MAX_HANDED_ON + 8;
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        uow.run(async (em) => {
          await em.query('INSERT INTO parent (id) VALUES (?)', [i]);
          if (i === 5) throw new Error('work failed');
          // A held write that fails fails its COMMIT, so the next transaction is not begun by it.
          if (i === 9) await writeAtCommit(em, 'INSERT INTO parent (id) VALUES (?)', [8]);
          return i;
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([
      'Error: work failed',
      expect.stringMatching(/UNIQUE constraint failed/),
    ]);
    expect(await ids()).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i !== 5 && i !== 9));
    // The COMMIT whose held write failed did not begin the next one.
    const handedOn = execs.filter((e) => e.endsWith('COMMIT;\nBEGIN IMMEDIATE') && !e.includes('VALUES (8)')).length;
    expect(handedOn).toBeGreaterThan(MAX_HANDED_ON / 2);
    // Two failures and the bound each end a run of hand-ons: each run starts with a BEGIN of its own.
    expect(execs.filter((e) => e === 'BEGIN IMMEDIATE').length).toBeGreaterThanOrEqual(3);
    expect(execs.filter((e) => e === 'BEGIN IMMEDIATE').length + handedOn).toBe(n);
  });

  it('reports a COMMIT that fails while the next transaction waits, and runs that one in its own', async () => {
    const [failing, next] = await Promise.allSettled([
      uow.run((em) => em.query('INSERT INTO child (id, parent) VALUES (1, 999)')),
      uow.run((em) => em.query('INSERT INTO child (id, parent) VALUES (2, 0)')),
    ]);
    expect(failing).toMatchObject({
      status: 'rejected',
      reason: expect.objectContaining({ code: 'SQLITE_CONSTRAINT' }),
    });
    expect(next.status).toBe('fulfilled');
    expect(await db.query('SELECT id FROM child')).toEqual([{ id: 2 }]);
  });

  it('counts a failed COMMIT; BEGIN as committed only when BEGIN was what failed (busy)', () => {
    expect(
      committedBeforeFailing(Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY' })),
    ).toBe(true);
    for (const code of ['SQLITE_CONSTRAINT', 'SQLITE_FULL', 'SQLITE_IOERR', undefined])
      expect(committedBeforeFailing(Object.assign(new Error('failed'), { code }))).toBe(false);
    expect(committedBeforeFailing(null)).toBe(false);
  });
});

describe('UnitOfWork.commitWrites on SQLite: writes that need no answer go with the next COMMIT', () => {
  const { db, uow, execs } = inMemory(['CREATE TABLE g (id INTEGER PRIMARY KEY, v TEXT)']);
  const ids = async () => (await db.query<Array<{ id: number }>>('SELECT id FROM g ORDER BY id')).map((r) => r.id);
  const insert = (id: number) => ({ text: 'INSERT INTO g (id, v) VALUES (?, ?)', params: [id, `guest ${id}`] });

  it('runs them alone in one trip when nothing else runs', async () => {
    execs.length = 0;
    await uow.commitWrites([insert(1), insert(2)]);
    expect(await ids()).toEqual([1, 2]);
    expect(execs).toEqual([
      "BEGIN IMMEDIATE;\nINSERT INTO g (id, v) VALUES (1, 'guest 1');\nINSERT INTO g (id, v) VALUES (2, 'guest 2');\nCOMMIT",
    ]);
  });

  it('commits them with the COMMIT of the transaction running, and resolves them once it committed', async () => {
    execs.length = 0;
    let release!: () => void;
    const host = uow.run(async (em) => {
      await em.query('INSERT INTO g (id, v) VALUES (?, ?)', [10, 'host']);
      await new Promise<void>((r) => (release = r));
    });
    await new Promise((r) => setTimeout(r, 10));
    let committed = false;
    const guest = uow.commitWrites([insert(11)]).then(() => (committed = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(committed).toBe(false);
    release();
    await Promise.all([host, guest]);
    expect(await ids()).toEqual([1, 2, 10, 11]);
    expect(execs.filter((e) => e.includes('COMMIT'))).toEqual([
      "SAVEPOINT guests;\nINSERT INTO g (id, v) VALUES (11, 'guest 11');\nRELEASE guests;\nCOMMIT",
    ]);
  });

  it('commits the transaction without a guest whose write fails, which fails alone', async () => {
    let release!: () => void;
    const host = uow.run(async (em) => {
      await em.query('INSERT INTO g (id, v) VALUES (?, ?)', [20, 'host']);
      await new Promise<void>((r) => (release = r));
    });
    await new Promise((r) => setTimeout(r, 10));
    const duplicate = uow.commitWrites([insert(21), insert(1)]);
    const sound = uow.commitWrites([insert(22)]);
    release();
    await expect(host).resolves.toBeUndefined();
    await expect(duplicate).rejects.toThrow(/UNIQUE constraint failed/);
    await expect(sound).resolves.toBeUndefined();
    // The failing guest left nothing behind (21 went with it); the host and the sound guest committed.
    expect(await ids()).toEqual([1, 2, 10, 11, 20, 22]);
  });

  it('takes them back out when the transaction fails on its own: they commit, it does not', async () => {
    let release!: () => void;
    const host = uow.run(async (em) => {
      await em.query('INSERT INTO g (id, v) VALUES (?, ?)', [30, 'host']);
      await new Promise<void>((r) => (release = r));
      await writeAtCommit(em, 'INSERT INTO g (id, v) VALUES (?, ?)', [10, 'a duplicate of the host of before']);
    });
    await new Promise((r) => setTimeout(r, 10));
    const guest = uow.commitWrites([insert(31)]);
    release();
    await expect(host).rejects.toThrow(/UNIQUE constraint failed/);
    await expect(guest).resolves.toBeUndefined();
    expect(await ids()).toEqual([1, 2, 10, 11, 20, 22, 31]);
  });

  it('runs a guest that comes while the last transaction is ending, so none is left waiting', async () => {
    for (let i = 0; i < 20; i++) {
      await uow.run((em) => em.query('INSERT INTO g (id, v) VALUES (?, ?)', [100 + 2 * i, 'host']));
      await uow.commitWrites([insert(101 + 2 * i)]);
    }
    expect((await ids()).filter((id) => id >= 100)).toHaveLength(40);
  });
});

describe('inlineParams for PostgreSQL', () => {
  it('writes each $n as the quoted text node-postgres would send, leaving quoted strings and comments alone', () => {
    const text = `/* $1 */ UPDATE t SET a = $2, "b$1" = 'x$1', c = E'\\'$1' WHERE id IN ($1, $3) -- $2`;
    expect(inlineParams(text, ["it's", 7, null], { postgres: true })).toBe(
      `/* $1 */ UPDATE t SET a = '7', "b$1" = 'x$1', c = E'\\'$1' WHERE id IN ('it''s', NULL) -- $2`,
    );
    expect(inlineParams('SELECT $1', ['back\\slash'], { postgres: true })).toBe("SELECT  E'back\\\\slash'");
  });

  it('answers undefined for a Buffer, a $n out of range or a parameter never used', () => {
    expect(inlineParams('SELECT $1', [Buffer.from('x')], { postgres: true })).toBeUndefined();
    expect(inlineParams('SELECT $2', [1], { postgres: true })).toBeUndefined();
    expect(inlineParams('SELECT $1', [1, 2], { postgres: true })).toBeUndefined();
  });
});

describe('commitWrites (real PostgreSQL): one simple query, one transaction', () => {
  const db = new DataSource({ type: 'postgres', url: PG_ADMIN_URL });
  const uow = new UnitOfWork(db);
  const table = `inline_${process.pid}_${Date.now()}`;
  const odd = ['it\'s "quoted" $1 ?', 'line\nbreak; COMMIT; --', '✓ 🎞 \u{1F600}', '', "back\\slash \\' E'x'", '$$ $a$'];
  beforeAll(async () => {
    await db.initialize();
    await db.query(
      `CREATE TABLE ${table} (id int PRIMARY KEY, v text, n double precision, at timestamptz, j jsonb, b boolean)`,
    );
  });
  afterAll(async () => {
    await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.destroy();
  });
  const insert = `INSERT INTO ${table} (id, v, n, at, j, b) VALUES ($1, $2, $3, $4, $5, $6)`;
  const row = (id: number, k: number) => [
    id,
    odd[k],
    k / 3,
    new Date(1_700_000_000_123 + k),
    { v: odd[k], k },
    k % 2 === 0,
  ];
  const read = (from: number) =>
    db.query<Array<Record<string, unknown>>>(
      `SELECT v, n, at, j, b FROM ${table} WHERE id >= $1 AND id < $2 ORDER BY id`,
      [from, from + 100],
    );

  it('stores every value exactly as the same statement with bound parameters does', async () => {
    await uow.commitWrites(odd.map((_, k) => ({ text: insert, params: row(k, k) })));
    for (const k of odd.keys()) await db.query(insert, row(100 + k, k));
    const inlined = await read(0);
    expect(inlined).toHaveLength(odd.length);
    expect(inlined).toEqual(await read(100));
    expect(inlined.map((r) => r.v)).toEqual(odd);
  });

  it("UnitOfWork: holds writeAtCommit's writes until the COMMIT, sent in its trip", async () => {
    await uow.run(async (em) => {
      await em.query(insert, row(300, 0));
      await writeAtCommit(em, insert, row(301, 1));
      expect(await em.query(`SELECT id FROM ${table} WHERE id >= 300`)).toEqual([{ id: 300 }]);
    });
    expect((await read(300)).map((r) => r.v)).toEqual([odd[0], odd[1]]);
  });

  it('UnitOfWork: rolls the whole transaction back when a held write fails, and reports that failure', async () => {
    await expect(
      uow.run(async (em) => {
        await em.query(insert, row(400, 0));
        await writeAtCommit(em, insert, row(300, 1)); // a key taken above
      }),
    ).rejects.toThrow(/duplicate key/);
    expect(await read(400)).toEqual([]);
  });

  it('writes nothing when one of its statements fails', async () => {
    const before = await db.query<Array<{ c: string }>>(`SELECT COUNT(*) AS c FROM ${table}`);
    await expect(
      uow.commitWrites([
        { text: insert, params: row(200, 0) },
        { text: insert, params: row(200, 1) },
      ]),
    ).rejects.toThrow();
    expect(await db.query(`SELECT COUNT(*) AS c FROM ${table}`)).toEqual(before);
  });
});
