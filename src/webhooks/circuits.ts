import type { EntityManager } from 'typeorm';
import { entityFromRow, Sql } from '../database/sql.js';
import { Circuit, CLOSED } from './circuit-breaker.js';
import { WebhookCircuit } from './delivery.entity.js';

/**
 * Where the circuits live: the database, read and written inside the ledger's transactions, so a hold, a probe and
 * the attempt that opens or closes a circuit commit together with the deliveries they concern, and every worker
 * process sees one state. Only circuits that are not plainly closed have a row, so the common case reads nothing.
 */
export class CircuitStore {
  constructor(private readonly sql: Sql) {}

  /** The circuits of these URLs (absent = closed); `lock` takes their rows for this transaction (PostgreSQL). */
  async load(em: EntityManager, urls: readonly string[], lock = false): Promise<Map<string, Circuit>> {
    const unique = [...new Set(urls)].sort();
    if (unique.length === 0) return new Map();
    const rows = await em.query<Array<Record<string, unknown>>>(
      `SELECT * FROM webhook_circuits WHERE url IN (${this.sql.params(unique.length)}) ORDER BY url${lock && this.sql.postgres ? ' FOR UPDATE' : ''}`,
      unique,
    );
    return new Map(
      rows
        .map((r) => entityFromRow(em, WebhookCircuit, r))
        .map((c) => [c.url, { state: c.state, failures: c.failures, openings: c.openings, until: c.until }]),
    );
  }

  /** Writes a circuit's new state: a closed one without failures is no row at all. */
  async save(em: EntityManager, url: string, c: Circuit, existed: boolean, now: Date): Promise<void> {
    if (c.state === CLOSED.state && c.failures === 0) {
      if (existed) await em.query(`DELETE FROM webhook_circuits WHERE url = ${this.sql.params(1)}`, [url]);
      return;
    }
    await em.query(
      `INSERT INTO webhook_circuits (url, state, failures, openings, "until", updated_at) VALUES (${this.sql.params(6)}) ON CONFLICT (url) DO UPDATE SET state = excluded.state, failures = excluded.failures, openings = excluded.openings, "until" = excluded."until", updated_at = excluded.updated_at`,
      [url, c.state, c.failures, c.openings, c.until?.getTime() ?? null, now.getTime()],
    );
  }

  /** Turns an open circuit into a half-open one for one probe; false when another worker took the probe first. */
  async takeProbe(em: EntityManager, url: string, from: Circuit, to: Circuit, now: Date): Promise<boolean> {
    const p = (i: number) => this.sql.params(1, i);
    const result = await em.query<unknown>(
      `UPDATE webhook_circuits SET state = ${p(1)}, "until" = ${p(2)}, updated_at = ${p(3)} WHERE url = ${p(4)} AND state = ${p(5)} AND "until" = ${p(6)}${this.sql.postgres ? ' RETURNING url' : ''}`,
      [to.state, to.until?.getTime() ?? null, now.getTime(), url, from.state, from.until?.getTime() ?? null],
    );
    if (this.sql.postgres) return this.sql.returned(result).length > 0;
    // SQLite holds the write lock for the whole round: the row read at the start of the round is still as read.
    return true;
  }
}
