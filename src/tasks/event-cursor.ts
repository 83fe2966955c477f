import type { EntityManager } from 'typeorm';
import { Sql } from '../database/sql.js';
import { flushAtCommit, writeAtCommit } from '../database/unit-of-work.js';

/**
 * The tenant-wide event cursor. Each event-writing transaction bumps its tenant's counter row
 * (`UPDATE tenants SET event_cursor = event_cursor + n … RETURNING`) and numbers its events from it. The row stays
 * locked until COMMIT, so a tenant's event transactions commit in cursor order, on PostgreSQL as on SQLite (whose
 * writes are serialized anyway): a reader that sees cursor N has every smaller cursor committed too, and paging
 * with `after=` never skips one. A sequence or an id taken before commit would not give that: on PostgreSQL,
 * transactions in several processes commit out of order. The cost is that one tenant's event writes queue on that
 * row for the end of their transaction (docs/STREAMS.md).
 */

/** Cursors on the wire: 16 zero-padded decimal digits, so they compare the same as strings and as numbers. */
export function formatCursor(cursor: number): string {
  return String(cursor).padStart(16, '0');
}

/** A cursor a client sent back (padded or not); undefined when it is not one. */
export function parseCursor(text: string | undefined | null): number | undefined {
  if (text === undefined || text === null) return undefined;
  const trimmed = text.trim();
  if (!/^\d{1,16}$/.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Claims `count` cursors for each tenant, in tenant id order (a fixed lock order, so two rounds touching the same
 * tenants cannot deadlock), and answers the first cursor of each tenant's block. Call it last in the transaction,
 * just before the inserts, so the row is held only for those and the COMMIT.
 */
export async function claimCursors(
  em: EntityManager,
  counts: ReadonlyMap<string, number>,
): Promise<Map<string, number>> {
  const sql = new Sql(em.connection);
  // Cursors given back with the COMMIT (returnCursors) go first, so that this block follows them.
  await flushAtCommit(em);
  const first = new Map<string, number>();
  for (const tenantId of [...counts.keys()].sort()) {
    const n = counts.get(tenantId)!;
    // Lower-case: TypeORM's SQLite runner sends statements starting "UPDATE " through run(), which drops RETURNING rows.
    const result: unknown = await em.query(
      `update tenants SET event_cursor = event_cursor + ${sql.params(1)} WHERE id = ${sql.params(1, 2)} RETURNING event_cursor`,
      [n, tenantId],
    );
    const rows = sql.postgres
      ? sql.returned<{ event_cursor: string | number }>(result)
      : (result as Array<{ event_cursor: number }>);
    if (rows.length !== 1) throw new Error(`tenant ${tenantId} not found while numbering its events`);
    first.set(tenantId, Number(rows[0].event_cursor) - n + 1);
  }
  return first;
}

/**
 * Gives back the last `count` cursors a tenant's block claimed in this transaction and did not use, with the COMMIT
 * (the tenant's row stays this transaction's until then, so no other has numbered events after them).
 */
export function returnCursors(em: EntityManager, tenantId: string, count: number): Promise<void> {
  const sql = new Sql(em.connection);
  return writeAtCommit(
    em,
    `UPDATE tenants SET event_cursor = event_cursor - ${sql.params(1)} WHERE id = ${sql.params(1, 2)}`,
    [count, tenantId],
  );
}

/** How many events each tenant gets in a batch: what claimCursors takes. */
export function countByTenant(entries: ReadonlyArray<{ task: { tenantId: string } }>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { task } of entries) counts.set(task.tenantId, (counts.get(task.tenantId) ?? 0) + 1);
  return counts;
}
