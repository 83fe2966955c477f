import type { DataSource, EntityManager } from 'typeorm';
import { returningRows } from '../database/sql.js';

/**
 * What the delivery SQL writes differently on SQLite and PostgreSQL. SQLite has one connection and takes the
 * write lock at BEGIN (UnitOfWork), so a row read in a transaction is still as read when it is updated; PostgreSQL
 * runs transactions side by side, so an UPDATE re-checks what it read and says which rows it changed (RETURNING).
 */
export interface DeliveryDialect {
  /** `count` placeholders, numbered from `from`, joined by commas: `?, ?` or `$3, $4`. */
  params(count: number, from?: number): string;
  /** Appended to a SELECT whose rows the transaction will update (row locks on PostgreSQL). */
  readonly lockRows: string;
  /**
   * Runs an UPDATE of the rows with these keys (column `key`) and answers the keys of the rows it changed.
   */
  changed(
    em: EntityManager,
    update: string,
    values: unknown[],
    keys: readonly string[],
    options?: { key?: string },
  ): Promise<Set<string>>;
  /** Ledger rounds in flight at once (one connection on SQLite). */
  readonly ledgerRounds: number;
  /**
   * After `FROM table alias`: the index to walk where two lead with the same columns and the partial one is meant
   * (SQLite, without statistics, takes the full one and steps over every row the partial one leaves out).
   */
  indexedBy(name: string): string;
  /** Appended to a sub-SELECT of rows to update that may skip rows another transaction holds (PostgreSQL). */
  readonly skipLockedRows: string;
  /**
   * Whether a statement over many rows takes them as one JSON parameter read by json_each (SQLite: one text for any
   * number of rows, kept prepared) rather than a term per row.
   */
  readonly jsonRows: boolean;
}

export class SqliteDialect implements DeliveryDialect {
  readonly lockRows = '';
  readonly ledgerRounds = 1;
  readonly skipLockedRows = '';
  readonly jsonRows = true;

  params(count: number): string {
    return Array.from({ length: count }, () => '?').join(', ');
  }

  indexedBy(name: string): string {
    return `INDEXED BY ${name}`;
  }

  async changed(em: EntityManager, update: string, values: unknown[], keys: readonly string[]): Promise<Set<string>> {
    await em.query(update, values);
    return new Set(keys);
  }
}

// PostgreSQL's pool takes two ledger rounds at once (claims are conditional UPDATEs, so they cannot both win a
// delivery; endpoints are updated in key order, so they cannot deadlock); a third gained nothing more.
const POSTGRES_LEDGER_ROUNDS = 2;

export class PostgresDialect implements DeliveryDialect {
  readonly lockRows = ' FOR UPDATE';
  readonly ledgerRounds = POSTGRES_LEDGER_ROUNDS;
  readonly skipLockedRows = ' FOR UPDATE SKIP LOCKED';
  readonly jsonRows = false;

  params(count: number, from = 1): string {
    return Array.from({ length: count }, (_, i) => `$${from + i}`).join(', ');
  }

  indexedBy(): string {
    return '';
  }

  async changed(
    em: EntityManager,
    update: string,
    values: unknown[],
    _keys: readonly string[],
    { key = 'id' } = {},
  ): Promise<Set<string>> {
    const rows = returningRows<Record<string, string>>(await em.query<unknown>(`${update} RETURNING ${key}`, values));
    return new Set(rows.map((r) => r[key]));
  }
}

export function dialectOf(db: DataSource): DeliveryDialect {
  return db.options.type === 'postgres' ? new PostgresDialect() : new SqliteDialect();
}
