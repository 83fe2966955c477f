import { describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import { Sql } from './sql.js';

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
