import type { DataSource } from 'typeorm';

/**
 * Plain SQL for the few statements on every webhook's path (claim, attempt log, outcome). TypeORM's query
 * builders spent ~6 % of the worker's CPU composing these same statements again for every batch; here they are
 * written once, with positional parameters in the dialect of the data source. Values must already be in their
 * stored form (timestamps as epoch ms, JSON as text).
 */
export class Sql {
  private readonly postgres: boolean;

  constructor(db: DataSource) {
    this.postgres = db.options.type === 'postgres';
  }

  /** `count` placeholders, numbered from `from` (PostgreSQL's $n), joined by commas: `?, ?` or `$3, $4`. */
  params(count: number, from = 1): string {
    return Array.from({ length: count }, (_, i) => (this.postgres ? `$${from + i}` : '?')).join(', ');
  }

  /** `(…), (…)` for a multi-row VALUES of `rows` rows of `width` values each, numbered from `from`. */
  rows(rows: number, width: number, from = 1): string {
    return Array.from({ length: rows }, (_, r) => `(${this.params(width, from + r * width)})`).join(', ');
  }

  /** What a data-modifying statement's result says about the rows it touched (`RETURNING` rows on PostgreSQL). */
  returned<T>(result: unknown): T[] {
    // TypeORM answers PostgreSQL's UPDATE … RETURNING with [rows, count].
    return this.postgres && Array.isArray(result) && Array.isArray(result[0]) ? (result[0] as T[]) : [];
  }
}
