import sqlite3 from 'sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import { Delivery } from '../webhooks/delivery.entity.js';
import { freshDelivery } from '../webhooks/delivery-planner.js';
import { entityFromRow, insertMany, Sql } from './sql.js';

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
  const db = new DataSource({ type: 'sqlite', database: ':memory:', entities: [Delivery], synchronize: true, driver: sqlite3 });
  beforeAll(() => db.initialize());
  afterAll(() => db.destroy());

  it('writes entities with their columns converted (dates as epoch ms, JSON as text) and reads them back whole', async () => {
    const now = new Date(1_700_000_000_123);
    const rows = ['a', 'b'].map((n, i) =>
      db.manager.create(Delivery, {
        ...freshDelivery(now, 1_000 * i),
        tenantId: 't1',
        taskId: i ? null : 'k1',
        eventId: `e-${n}`,
        eventType: 'task.completed',
        sequence: 3 + i,
        target: 'request',
        url: 'https://example.com/hook',
        headersSealed: null,
        payload: '{"a":1}',
        schedule: [0, 60_000],
      }),
    );
    await insertMany(db.manager, Delivery, rows);
    const raw = (await db.query('SELECT * FROM deliveries ORDER BY sequence')) as Array<Record<string, unknown>>;
    expect(raw[0]).toMatchObject({ next_attempt_at: 1_700_000_000_123, schedule: '[0,60000]', status: 'pending', dispatched_at: null });
    const back = raw.map((r) => entityFromRow(db.manager, Delivery, r));
    expect(back[0]).toBeInstanceOf(Delivery);
    expect(back).toEqual(rows);
    expect(back[1].nextAttemptAt.getTime()).toBe(1_700_000_001_123);
    expect(back[1].taskId).toBeNull();
  });
});
