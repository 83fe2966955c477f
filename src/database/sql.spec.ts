import sqlite3 from 'sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Column, DataSource, Entity, PrimaryColumn, type EntityManager } from 'typeorm';
import { epochMs } from './columns.js';
import { entityFromRow, insertMany, Sql, together } from './sql.js';

// A table with the column kinds the domain entities use: epoch-ms dates (one nullable), JSON, nullable text.
@Entity('rows')
class Row {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'task_id', type: 'varchar', length: 36, nullable: true })
  taskId: string | null;

  @Column({ type: 'integer' })
  sequence: number;

  @Column({ type: 'simple-json' })
  schedule: number[];

  @Column({ name: 'next_attempt_at', type: 'bigint', transformer: epochMs })
  nextAttemptAt: Date;

  @Column({ name: 'dispatched_at', type: 'bigint', transformer: epochMs, nullable: true })
  dispatchedAt: Date | null;
}

const sql = (type: string) => new Sql({ options: { type } } as DataSource);

describe('Sql placeholders', () => {
  it('writes ? for SQLite and numbered $n for PostgreSQL', () => {
    expect(sql('sqlite').params(3)).toBe('?, ?, ?');
    expect(sql('postgres').params(3, 4)).toBe('$4, $5, $6');
  });

  it('numbers multi-row VALUES row after row', () => {
    expect(sql('postgres').rows(2, 2, 2)).toBe('($2, $3), ($4, $5)');
    expect(sql('sqlite').rows(2, 3)).toBe('(?, ?, ?), (?, ?, ?)');
  });
});

describe('insertMany and entityFromRow (real SQLite, the entity as mapped)', () => {
  const db = new DataSource({
    type: 'sqlite',
    database: ':memory:',
    entities: [Row],
    synchronize: true,
    driver: sqlite3,
  });
  beforeAll(() => db.initialize());
  afterAll(() => db.destroy());

  it('writes entities with their columns converted (dates as epoch ms, JSON as text) and reads them back whole', async () => {
    const now = new Date(1_700_000_000_123);
    const rows = ['a', 'b'].map((n, i) =>
      db.manager.create(Row, {
        id: n,
        taskId: i ? null : 'k1',
        sequence: 3 + i,
        schedule: [0, 60_000],
        nextAttemptAt: new Date(now.getTime() + 1_000 * i),
        dispatchedAt: null,
      }),
    );
    await insertMany(db.manager, Row, rows);
    const raw = await db.query<Array<Record<string, unknown>>>('SELECT * FROM rows ORDER BY sequence');
    expect(raw[0]).toMatchObject({ next_attempt_at: 1_700_000_000_123, schedule: '[0,60000]', dispatched_at: null });
    const back = raw.map((r) => entityFromRow(db.manager, Row, r));
    expect(back[0]).toBeInstanceOf(Row);
    expect(back).toEqual(rows);
    expect(back[1].nextAttemptAt.getTime()).toBe(1_700_000_001_123);
    expect(back[1].taskId).toBeNull();
  });

  it('keeps every value exact through the one JSON parameter SQLite gets: text of any kind, numbers, nulls', async () => {
    const odd = ['it\'s "quoted"', 'line\nbreak, tab\t, NUL \u0000 and ✓ 🎞', '', '[1,2]', 'null'];
    const rows = odd.map((taskId, i) =>
      db.manager.create(Row, {
        id: `odd-${i}`,
        taskId,
        sequence: i === 0 ? 2 ** 53 - 1 : -i,
        schedule: [0.5, 1e21],
        nextAttemptAt: new Date(8_640_000_000_000_000 - i),
        dispatchedAt: i % 2 ? new Date(0) : null,
      }),
    );
    await insertMany(db.manager, Row, rows);
    const raw = await db.query<Array<Record<string, unknown>>>(
      "SELECT *, typeof(task_id) AS t, typeof(sequence) AS s FROM rows WHERE id LIKE 'odd-%' ORDER BY id",
    );
    expect(raw.map((r) => [r.t, r.s])).toEqual(odd.map(() => ['text', 'integer']));
    expect(raw.map((r) => entityFromRow(db.manager, Row, r))).toEqual(rows);
    // A lone surrogate is stored as bound text is: U+FFFD.
    await insertMany(db.manager, Row, [{ ...rows[0], id: 'odd-lone', taskId: 'lone \ud800 half' }]);
    expect(await db.query("SELECT task_id FROM rows WHERE id = 'odd-lone'")).toEqual([{ task_id: 'lone \ufffd half' }]);
  });

  it('writes one statement text whatever the number of rows, so SQLite keeps it prepared', async () => {
    const texts: string[] = [];
    const em = { connection: db, query: (text: string) => (texts.push(text), Promise.resolve()) } as EntityManager;
    const row = (id: string) =>
      db.manager.create(Row, {
        id,
        taskId: null,
        sequence: 1,
        schedule: [],
        nextAttemptAt: new Date(),
        dispatchedAt: null,
      });
    await insertMany(em, Row, [row('x')]);
    await insertMany(em, Row, [row('y'), row('z'), row('w')]);
    expect(texts[0]).toBe(texts[1]);
  });

  it('answers the rows an UPDATE … RETURNING changed (SQLite)', async () => {
    const when = new Date(1_700_000_009_000);
    const sqlite = new Sql(db);
    const changed = await sqlite.updateReturning<Record<string, unknown>>(
      db.manager,
      `UPDATE rows SET "dispatched_at" = ?, "schedule" = ? WHERE id = ? RETURNING *`,
      [when.getTime(), '[5]', 'a'],
    );
    expect(changed).toHaveLength(1);
    expect(entityFromRow(db.manager, Row, changed[0])).toMatchObject({ id: 'a', dispatchedAt: when, schedule: [5] });
    expect(
      await sqlite.updateReturning(db.manager, `UPDATE rows SET sequence = 9 WHERE id = 'none' RETURNING *`, []),
    ).toEqual([]);
  });
});

describe('together', () => {
  const after = <T>(ms: number, value: T, fail = false) =>
    new Promise<T>((resolve, reject) =>
      setTimeout(() => (fail ? reject(new Error(String(value))) : resolve(value)), ms),
    );
  const on = (type: string) => ({ connection: { options: { type } } }) as EntityManager;

  it('SQLite: starts every statement at once and answers each in the order given', async () => {
    const started: number[] = [];
    const statement = (i: number, ms: number) => () => (started.push(i), after(ms, i));
    const answers = together(on('sqlite'), [statement(0, 10), statement(1, 1), statement(2, 0)]);
    expect(started).toEqual([0, 1, 2]);
    await expect(answers).resolves.toEqual([0, 1, 2]);
  });

  it('SQLite: throws the first failure only once every statement has settled', async () => {
    const settled: string[] = [];
    const slow = () => after(30, 'slow').then((v) => (settled.push(v), v));
    await expect(together(on('sqlite'), [() => after(1, 'broken', true), slow])).rejects.toThrow('broken');
    expect(settled).toEqual(['slow']);
  });

  it('PostgreSQL: one statement after another, stopping at the first failure', async () => {
    const started: number[] = [];
    const statement =
      (i: number, fail = false) =>
      () => (started.push(i), after(1, i, fail));
    const answers = together(on('postgres'), [statement(0), statement(1)]);
    expect(started).toEqual([0]);
    await expect(answers).resolves.toEqual([0, 1]);
    await expect(together(on('postgres'), [statement(2, true), statement(3)])).rejects.toThrow('2');
    expect(started).toEqual([0, 1, 2]);
  });

  it('on real SQLite: statements sent together in a transaction that fails leave nothing behind', async () => {
    const db = new DataSource({ type: 'sqlite', database: ':memory:', entities: [], driver: sqlite3 });
    await db.initialize();
    try {
      await db.query('CREATE TABLE t (id INTEGER PRIMARY KEY)');
      const runner = db.createQueryRunner();
      await runner.query('BEGIN IMMEDIATE');
      const inserts = Array.from({ length: 20 }, (_, i) => () => runner.query('INSERT INTO t (id) VALUES (?)', [i]));
      await expect(
        together(runner.manager, [...inserts, () => runner.query('INSERT INTO t (id) VALUES (?)', [3])]),
      ).rejects.toThrow(/UNIQUE/);
      await runner.query('ROLLBACK');
      await runner.release();
      expect(await db.query('SELECT COUNT(*) AS n FROM t')).toEqual([{ n: 0 }]);
    } finally {
      await db.destroy();
    }
  });
});
