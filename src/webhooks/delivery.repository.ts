import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, In, LessThan, MoreThan } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import {
  byKey,
  entityFromRow,
  insertMany,
  insertStatement,
  jsonSafe,
  type Statement,
  together,
} from '../database/sql.js';
import { flushAtCommit, insertAtCommit, writeAtCommit } from '../database/unit-of-work.js';
import { Circuit, CLOSED } from './circuit-breaker.js';
import { DeliveryDialect, dialectOf } from './delivery-dialect.js';
import type { OpenInLane } from './delivery-order.js';
import { Delivery, DeliveryAttempt, REQUEST_TARGET, WebhookCircuit } from './delivery.entity.js';
import { Endpoint } from './endpoint.entity.js';

// Rows per INSERT: well under SQLite's limit of bound variables (17 columns each).
export const INSERT_CHUNK = 500;
// Lanes per supersede statement (six bound values each).
const SUPERSEDE_LANES = 200;

/** A task's deliveries to one target, up to the sequence of its newest event. */
type Lane = { taskId: string; target: string; sequence: number };

/** A delivery marked dispatched (just committed, or taken by the relay), as far as dispatching it needs. */
export interface Dispatchable {
  id: string;
  nextAttemptAt: Date;
  target: string;
  /** It goes in its endpoint's batches (see inBatches): handed on once per endpoint, not one by one. */
  inBatches: boolean;
}

/**
 * A row as the claim reads it: the delivery, the lowest sequence of its lane (task + target) on the wire, and when
 * the earliest of the lane's earlier events still pending is due (epoch ms; null when there is none).
 */
export type ClaimRow = Record<string, unknown> & { status: unknown; lane_on_wire: unknown; earlier_due: unknown };

/**
 * Every SQL statement of delivery: the outbox rows, claims, attempt records, the relay's and the sweeper's
 * looks, and the circuits. Statements that differ between SQLite and PostgreSQL ask the dialect. Values are
 * bound in their stored form (timestamps as epoch ms). Methods taking `em` run in the caller's transaction.
 */
@Injectable()
export class DeliveryRepository {
  readonly dialect: DeliveryDialect;

  constructor(@InjectDataSource() private readonly db: DataSource) {
    this.dialect = dialectOf(db);
  }

  /** Outside any transaction: for reads of views. */
  get reader(): EntityManager {
    return this.db.manager;
  }

  private p(count: number, from = 1): string {
    return this.dialect.params(count, from);
  }

  // --- The outbox: new rows ---

  /** The enabled endpoints of these tenants (written as SQL: every round of creates and task changes asks). */
  async enabledEndpoints(em: EntityManager, tenantIds: readonly string[]): Promise<Endpoint[]> {
    const rows = await em.query<Array<Record<string, unknown>>>(
      `SELECT * FROM webhook_endpoints WHERE tenant_id IN (${this.p(tenantIds.length)}) AND status = 'enabled'`,
      [...tenantIds],
    );
    return rows.map((row) => entityFromRow(em, Endpoint, row));
  }

  /** `atCommit`: sent with the COMMIT (writeAtCommit), for a round that reads nothing of them after. */
  async insert(em: EntityManager, rows: readonly Delivery[], { atCommit = false } = {}): Promise<void> {
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      const chunk = rows.slice(i, i + INSERT_CHUNK);
      await (atCommit ? insertAtCommit(em, Delivery, chunk) : insertMany(em, Delivery, chunk));
    }
  }

  /**
   * Progress not yet sent is worthless once a newer event for the same target exists: the unsent progress of these
   * lanes (task + target) older than their newer event is superseded, one statement for a round's lanes, each term
   * on the (task_id, target, sequence) index. `atCommit`: sent with the COMMIT after the writes held before it
   * (writeAtCommit).
   */
  async supersedeStaleProgress(em: EntityManager, lanes: readonly Lane[], { atCommit = false } = {}): Promise<void> {
    // A claim held for the COMMIT keeps its row from being superseded.
    if (!atCommit) await flushAtCommit(em);
    const now = Date.now();
    for (let i = 0; i < lanes.length; i += SUPERSEDE_LANES) {
      const chunk = lanes.slice(i, i + SUPERSEDE_LANES);
      const asJson = this.dialect.jsonRows && chunk.every((l) => jsonSafe(l.taskId) && jsonSafe(l.target));
      const [text, params] = asJson ? this.supersedeByJson(chunk, now) : this.supersedeByTerms(chunk, now);
      if (atCommit) await writeAtCommit(em, text, params);
      else await em.query(text, params);
    }
  }

  /** SQLite: the lanes as one JSON array of `[task, target, sequence]`: one text for any number of lanes. */
  private supersedeByJson(lanes: readonly Lane[], now: number): [string, unknown[]] {
    return [
      `WITH j AS (SELECT value FROM json_each(?)) UPDATE deliveries SET status = 'superseded', updated_at = ?, completed_at = ?, last_error = 'superseded by event ' || CAST(j.value->>2 AS VARCHAR) FROM j WHERE deliveries.task_id = j.value->>0 AND deliveries.target = j.value->>1 AND deliveries.sequence < j.value->>2 AND deliveries.event_type = 'task.progress' AND ${byKey('deliveries.status')} = 'pending' AND deliveries.batch_id IS NULL`,
      [JSON.stringify(lanes.map((l) => [l.taskId, l.target, l.sequence])), now, now],
    ];
  }

  private supersedeByTerms(lanes: readonly Lane[], now: number): [string, unknown[]] {
    const values: unknown[] = [now, now];
    const param = (v: unknown) => (values.push(v), this.p(1, values.length));
    const cases = lanes
      .map((l) => `WHEN task_id = ${param(l.taskId)} AND target = ${param(l.target)} THEN ${param(l.sequence)}`)
      .join(' ');
    const lanesWhere = lanes
      .map((l) => `(task_id = ${param(l.taskId)} AND target = ${param(l.target)} AND sequence < ${param(l.sequence)})`)
      .join(' OR ');
    return [
      `UPDATE deliveries SET status = 'superseded', updated_at = ${this.p(1)}, completed_at = ${this.p(1, 2)}, last_error = 'superseded by event ' || CAST(CASE ${cases} END AS VARCHAR) WHERE event_type = 'task.progress' AND ${byKey('status')} = 'pending' AND batch_id IS NULL AND (${lanesWhere})`,
      values,
    ];
  }

  findOf(em: EntityManager, tenantId: string, id: string): Promise<Delivery | null> {
    return em.findOneBy(Delivery, { id, tenantId });
  }

  /** Back to the relay, undispatched: those of these pending deliveries (or of the endpoint's pending ones). */
  async undispatch(em: EntityManager, which: { ids: readonly string[] } | { target: string }): Promise<void> {
    const where = 'ids' in which ? { id: In([...which.ids]) } : { target: which.target };
    await em.update(Delivery, { ...where, status: 'pending' }, { dispatchedAt: null });
  }

  // --- The relay and the sweeper ---

  /**
   * Pending deliveries matching `where` (on `d`), oldest due first, each marked whether it goes in its endpoint's
   * batches (in a batch already, or to an endpoint that takes them, and not a redelivery sent alone: inBatches).
   */
  async pending(where: string, limit: number, params: unknown[] = [], indexedBy = ''): Promise<Dispatchable[]> {
    const rows = await this.db.query<
      Array<{ id: string; next_attempt_at: unknown; target: string; in_batches: unknown }>
    >(
      `SELECT d.id, d.next_attempt_at, d.target, ${IN_BATCHES} AS in_batches FROM deliveries d ${indexedBy} WHERE d.status = 'pending' AND ${where} ORDER BY d.next_attempt_at LIMIT ${limit}`,
      params,
    );
    return rows.map((r) => ({
      id: r.id,
      nextAttemptAt: new Date(Number(r.next_attempt_at)),
      target: r.target,
      inBatches: Number(r.in_batches) === 1,
    }));
  }

  undispatched(limit: number): Promise<Dispatchable[]> {
    // The partial index of undispatched rows: the full (status, next_attempt_at) one would step over every pending
    // row already dispatched (a backlog being sent) at every round.
    return this.pending('d.dispatched_at IS NULL', limit, [], this.dialect.indexedBy('idx_deliveries_undispatched'));
  }

  /** Dispatched, due before `before`: the sweeper asks Redis whether their jobs are still there. */
  overdue(before: number, limit: number): Promise<Dispatchable[]> {
    return this.pending(`d.dispatched_at IS NOT NULL AND d.next_attempt_at < ${this.p(1)}`, limit, [before]);
  }

  /** Marks these dispatched; answers the ids this call marked (on PostgreSQL another process may have been first). */
  markDispatched(em: EntityManager, ids: readonly string[]): Promise<Set<string>> {
    return this.dialect.changed(
      em,
      `UPDATE deliveries SET dispatched_at = ${this.p(1)} WHERE id IN (${this.p(ids.length, 2)}) AND dispatched_at IS NULL`,
      [Date.now(), ...ids],
      ids,
    );
  }

  /**
   * Marks up to `limit` undispatched events in batches of these endpoints dispatched, in one statement, and answers
   * the endpoints it marked rows of (on PostgreSQL another process may have been first: it hands them over). An
   * endpoint's backlog is handed over once for that many events, not row by row: its batch run claims by endpoint.
   * Newest first: the oldest are the rows the endpoint's run is claiming, and on PostgreSQL marking them first held
   * those claims behind its row locks and deadlocked with the claims' lock order; rows a claim holds are skipped.
   */
  markEndpointsDispatched(em: EntityManager, endpointIds: readonly string[], limit: number): Promise<Set<string>> {
    return this.dialect.changed(
      em,
      `UPDATE deliveries SET dispatched_at = ${this.p(1)} WHERE id IN (SELECT d.id FROM deliveries d ${this.dialect.indexedBy('idx_deliveries_target_pending')} WHERE d.target IN (${this.p(endpointIds.length, 2)}) AND d.status = 'pending' AND d.dispatched_at IS NULL AND ${IN_BATCHES} = 1 ORDER BY d.next_attempt_at DESC LIMIT ${limit}${this.dialect.skipLockedRows}) AND dispatched_at IS NULL`,
      [Date.now(), ...endpointIds],
      endpointIds,
      { key: 'target' },
    );
  }

  /** Deliveries `sending` since before `before`: their worker is gone. */
  async stuck(before: Date, limit: number): Promise<string[]> {
    const rows = await this.db.getRepository(Delivery).find({
      where: { status: 'sending', updatedAt: LessThan(before) },
      select: { id: true },
      take: limit,
    });
    return rows.map((d) => d.id);
  }

  async handBackStuck(em: EntityManager, ids: readonly string[]): Promise<void> {
    await em.update(
      Delivery,
      { id: In([...ids]), status: 'sending' },
      { status: 'pending', dispatchedAt: null, updatedAt: new Date() },
    );
  }

  // --- Claims ---

  /**
   * The rows asked for, by primary key only (the status is checked by the caller: with `status` in the WHERE,
   * SQLite without statistics walks the (status, next_attempt_at) index over the whole backlog), each with the
   * lowest sequence of its lane now on the wire and when its lane's earlier pending events are due, which is all
   * the ordering rule needs (laneWaits). Both read the lane's (task_id, target, sequence) index.
   */
  async claimRows(em: EntityManager, ids: readonly string[]): Promise<ClaimRow[]> {
    await flushAtCommit(em); // claims held for the COMMIT are on the wire in their lanes
    return em.query<ClaimRow[]>(
      `SELECT d.*, (SELECT MIN(s.sequence) FROM deliveries s WHERE s.task_id = d.task_id AND s.target = d.target AND s.status = 'sending') AS lane_on_wire, (SELECT MIN(s.next_attempt_at) FROM deliveries s WHERE s.task_id = d.task_id AND s.target = d.target AND s.sequence < d.sequence AND ${byKey('s.status')} = 'pending') AS earlier_due FROM deliveries d WHERE d.id IN (${this.p(ids.length)})`,
      [...ids],
    );
  }

  /**
   * Before a round writes new events of these tasks: their webhook_url deliveries pending or sending (on the lane's
   * (task_id, target, sequence) index), and which of their webhook_urls have a circuit (lanesAfterRound).
   */
  async openInLanes(
    em: EntityManager,
    taskIds: readonly string[],
  ): Promise<{ open: OpenInLane[]; circuitUrls: Set<string> }> {
    if (taskIds.length === 0) return { open: [], circuitUrls: new Set() };
    const [rows, circuits] = await together<Array<Record<string, unknown>>>(em, [
      () =>
        em.query(
          `SELECT id, task_id, sequence, status, event_type, next_attempt_at FROM deliveries WHERE task_id IN (${this.p(taskIds.length)}) AND target = '${REQUEST_TARGET}' AND ${byKey('status')} IN ('pending', 'sending')`,
          [...taskIds],
        ),
      () =>
        em.query(
          `SELECT url FROM webhook_circuits WHERE url IN (SELECT webhook_url FROM tasks WHERE id IN (${this.p(taskIds.length)}))`,
          [...taskIds],
        ),
    ]);
    return {
      open: rows.map((r) => ({
        id: r.id as string,
        taskId: r.task_id as string,
        target: REQUEST_TARGET,
        sequence: Number(r.sequence),
        status: r.status as OpenInLane['status'],
        eventType: r.event_type as string,
        nextAttemptAt: Number(r.next_attempt_at),
      })),
      circuitUrls: new Set(circuits.map((r) => r.url as string)),
    };
  }

  async endpointsByIds(em: EntityManager, ids: readonly string[]): Promise<Map<string, Endpoint>> {
    const found = ids.length ? await em.findBy(Endpoint, { id: In([...ids]) }) : [];
    return new Map(found.map((e) => [e.id, e]));
  }

  async endpoint(em: EntityManager, id: string): Promise<Endpoint | undefined> {
    const [row] = await em.query<Array<Record<string, unknown>>>(
      `SELECT * FROM webhook_endpoints WHERE id = ${this.p(1)}`,
      [id],
    );
    return row ? entityFromRow(em, Endpoint, row) : undefined;
  }

  /** Of these ids, those with an earlier event of their lane on the wire or due (rate limits keep their place). */
  async behindInLane(em: EntityManager, ids: readonly string[], now: Date): Promise<Set<string>> {
    await flushAtCommit(em);
    const found = await em.query<Array<{ id: string }>>(
      `SELECT d.id FROM deliveries d WHERE d.id IN (${this.p(ids.length)}) AND EXISTS (SELECT 1 FROM deliveries s WHERE s.task_id = d.task_id AND s.target = d.target AND s.sequence < d.sequence AND (s.status = 'sending' OR (s.status = 'pending' AND s.next_attempt_at <= ${this.p(1, ids.length + 1)})))`,
      [...ids, now.getTime()],
    );
    return new Set(found.map((r) => r.id));
  }

  /** A pending delivery that cannot be sent (its endpoint gone or disabled) fails without an attempt. */
  async refuse(em: EntityManager, id: string, reason: string, now: Date): Promise<void> {
    await em.update(
      Delivery,
      { id, status: 'pending' },
      { status: 'failed', lastError: reason, updatedAt: now, completedAt: now },
    );
  }

  /** A pending delivery waits (its circuit is open) without spending an attempt. */
  async holdUntil(em: EntityManager, id: string, until: Date): Promise<void> {
    await em.update(Delivery, { id, status: 'pending' }, { nextAttemptAt: until });
  }

  /**
   * Pending → sending, its attempt counted. Answers the ids this claim won. `atCommit`: the claim is the
   * transaction's last word on rows it wrote itself, which no other transaction can see yet: it goes with the
   * COMMIT (writeAtCommit) and wins every one of them, on either database.
   */
  async claim(em: EntityManager, ids: readonly string[], now: Date, { atCommit = false } = {}): Promise<Set<string>> {
    // The status is checked again for PostgreSQL, whose transactions run side by side (on SQLite the write lock
    // keeps the rows as claimIn read them), written byKey so the lookup stays on the primary key.
    const update = `UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ${this.p(1)} WHERE id IN (${this.p(ids.length, 2)}) AND ${byKey('status')} = 'pending'`;
    const values = [now.getTime(), ...ids];
    if (!atCommit) return this.dialect.changed(em, update, values, ids);
    await writeAtCommit(em, update, values);
    return new Set(ids);
  }

  /**
   * Updates the deliveries only while the claim is still ours: `sending`, with the attempt count our claim set (a
   * later claim, after the sweeper handed it back, counts one more). Answers whether it was.
   */
  async updateOurClaim(
    em: EntityManager,
    ids: readonly string[],
    attempt: number,
    set: QueryDeepPartialEntity<Delivery>,
  ): Promise<boolean> {
    const result = await em.update(
      Delivery,
      { id: ids.length === 1 ? ids[0] : In([...ids]), status: 'sending', attempts: attempt },
      set,
    );
    return (result.affected ?? 0) > 0;
  }

  // --- Batches ---

  /** Every pending delivery to the endpoint fails (it is gone or disabled). */
  async refuseAll(em: EntityManager, endpointId: string, reason: string, now: Date): Promise<void> {
    await em.query(
      `UPDATE deliveries SET status = 'failed', last_error = ${this.p(1)}, updated_at = ${this.p(1, 2)}, completed_at = ${this.p(1, 3)} WHERE target = ${this.p(1, 4)} AND status = 'pending'`,
      [reason, now.getTime(), now.getTime(), endpointId],
    );
  }

  /** The endpoint's failed batch due again first, whole: its events (by batch_id), or none. */
  async batchAgain(em: EntityManager, endpointId: string, now: Date): Promise<Delivery[]> {
    const again = this.rows(
      em,
      await em.query(
        `SELECT * FROM deliveries WHERE target = ${this.p(1)} AND status = 'pending' AND batch_id IS NOT NULL AND next_attempt_at <= ${this.p(1, 2)} ORDER BY next_attempt_at LIMIT 1`,
        [endpointId, now.getTime()],
      ),
    );
    if (again.length === 0) return [];
    return this.rows(
      em,
      await em.query(
        `SELECT * FROM deliveries WHERE batch_id = ${this.p(1)} AND ${byKey('status')} = 'pending' ORDER BY id`,
        [again[0].batchId],
      ),
    );
  }

  /**
   * Due events of the endpoint for new batches, oldest first, none behind an earlier event of its lane. Only the
   * columns a batch's events need (BATCH_EVENT_COLUMNS; a carrier's whole row is read once claimed): converting every
   * column of every event was a third of a claim's time.
   */
  async batchCandidates(em: EntityManager, target: string, limit: number, now: Date): Promise<Delivery[]> {
    const rows = await em.query<Array<Record<string, unknown>>>(
      `SELECT ${BATCH_EVENT_COLUMNS} FROM deliveries d WHERE d.target = ${this.p(1)} AND d.status = 'pending' AND d.batch_id IS NULL AND NOT d.send_alone AND d.next_attempt_at <= ${this.p(1, 2)}
        AND NOT EXISTS (SELECT 1 FROM deliveries s WHERE s.task_id = d.task_id AND s.target = d.target AND (s.status = 'sending' OR ${BEHIND_IN_LANE})) ORDER BY d.next_attempt_at LIMIT ${Math.max(1, Math.floor(limit))}`,
      [target, now.getTime()],
    );
    return this.rows(em, rows);
  }

  /** The endpoint no longer takes batches: its events not in a batch go back to the relay, to go one by one. */
  async unbatch(em: EntityManager, endpointId: string): Promise<void> {
    await em.query(
      `UPDATE deliveries SET dispatched_at = NULL WHERE target = ${this.p(1)} AND status = 'pending' AND batch_id IS NULL`,
      [endpointId],
    );
  }

  /** The earliest pending event in the endpoint's batches (epoch ms), or undefined. */
  async nextBatchAt(em: EntityManager, endpointId: string): Promise<number | undefined> {
    const [row] = await em.query<Array<{ at: unknown }>>(
      `SELECT MIN(next_attempt_at) AS at FROM deliveries WHERE target = ${this.p(1)} AND status = 'pending' AND NOT send_alone`,
      [endpointId],
    );
    return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
  }

  /** A batch's events pending → sending, with one attempt count and its batch id. Answers the ids won. */
  claimBatch(
    em: EntityManager,
    ids: readonly string[],
    attempt: number,
    batchId: string,
    now: Date,
  ): Promise<Set<string>> {
    return this.dialect.changed(
      em,
      `UPDATE deliveries SET status = 'sending', attempts = ${this.p(1)}, batch_id = ${this.p(1, 2)}, updated_at = ${this.p(1, 3)} WHERE id IN (${this.p(ids.length, 4)}) AND ${byKey('status')} = 'pending'`,
      [attempt, batchId, now.getTime(), ...ids],
      ids,
    );
  }

  /** Whole rows by id (a batch's carriers, read once claimed). */
  async byIds(em: EntityManager, ids: readonly string[]): Promise<Delivery[]> {
    if (ids.length === 0) return [];
    return this.rows(em, await em.query(`SELECT * FROM deliveries WHERE id IN (${this.p(ids.length)})`, [...ids]));
  }

  async setBatchId(em: EntityManager, batchId: string, ids: readonly string[]): Promise<void> {
    await em.query(`UPDATE deliveries SET batch_id = ${this.p(1)} WHERE id IN (${this.p(ids.length, 2)})`, [
      batchId,
      ...ids,
    ]);
  }

  // --- Attempt records ---

  async insertAttempts(em: EntityManager, attempts: readonly DeliveryAttempt[]): Promise<void> {
    await insertMany(em, DeliveryAttempt, attempts);
  }

  /** Succeeded deliveries of one status code: one UPDATE. */
  async succeed(em: EntityManager, ids: readonly string[], code: number | null, now: Date): Promise<void> {
    const { text, params } = this.succeedStatement(ids, code, now);
    await em.query(text, params);
  }

  /**
   * A round of attempts that all succeeded, to task webhook_urls, as statements that need no answer (for
   * UnitOfWork.commitWrites): the attempt log, one UPDATE per status code, and the URLs' circuits closed, since a
   * success closes a circuit whatever it was (a closed circuit without failures is no row).
   */
  successStatements(
    em: EntityManager,
    attempts: readonly DeliveryAttempt[],
    byCode: ReadonlyMap<number | null, readonly string[]>,
    urls: readonly string[],
    now: Date,
  ): Statement[] {
    const unique = [...new Set(urls)].sort();
    return [
      ...(attempts.length ? [insertStatement(em, DeliveryAttempt, attempts)!] : []),
      ...[...byCode].map(([code, ids]) => this.succeedStatement(ids, code, now)),
      ...(unique.length
        ? [{ text: `DELETE FROM webhook_circuits WHERE url IN (${this.p(unique.length)})`, params: unique }]
        : []),
    ];
  }

  private succeedStatement(ids: readonly string[], code: number | null, now: Date): Statement {
    return {
      text: `UPDATE deliveries SET status = 'succeeded', last_status_code = ${this.p(1)}, last_error = NULL, updated_at = ${this.p(1, 2)}, completed_at = ${this.p(1, 3)} WHERE id IN (${this.p(ids.length, 4)}) AND ${byKey('status')} = 'sending'`,
      params: [code, now.getTime(), now.getTime(), ...ids],
    };
  }

  /** Sending deliveries after an attempt that did not succeed: pending again, superseded or failed. */
  async settle(em: EntityManager, ids: readonly string[], set: QueryDeepPartialEntity<Delivery>): Promise<void> {
    await em.update(Delivery, { id: ids.length === 1 ? ids[0] : In([...ids]), status: 'sending' }, set);
  }

  /** Whether a newer event of the delivery's task to the same target exists. */
  hasNewer(em: EntityManager, d: Delivery): Promise<boolean> {
    if (!d.taskId) return Promise.resolve(false);
    return em
      .getRepository(Delivery)
      .exists({ where: { taskId: d.taskId, target: d.target, sequence: MoreThan(d.sequence) } });
  }

  // --- Circuits: only circuits that are not plainly closed have a row, so the common case reads nothing ---

  /** The circuits of these URLs (absent = closed); `lock` takes their rows for this transaction. */
  async circuits(em: EntityManager, urls: readonly string[], lock = false): Promise<Map<string, Circuit>> {
    const unique = [...new Set(urls)].sort();
    if (unique.length === 0) return new Map();
    const rows = await em.query<Array<Record<string, unknown>>>(
      `SELECT * FROM webhook_circuits WHERE url IN (${this.p(unique.length)}) ORDER BY url${lock ? this.dialect.lockRows : ''}`,
      unique,
    );
    return new Map(
      rows
        .map((r) => entityFromRow(em, WebhookCircuit, r))
        .map((c) => [c.url, { state: c.state, failures: c.failures, openings: c.openings, until: c.until }]),
    );
  }

  /** Writes a circuit's new state: a closed one without failures is no row at all. */
  async saveCircuit(em: EntityManager, url: string, c: Circuit, existed: boolean, now: Date): Promise<void> {
    if (c.state === CLOSED.state && c.failures === 0) {
      if (existed) await em.query(`DELETE FROM webhook_circuits WHERE url = ${this.p(1)}`, [url]);
      return;
    }
    await em.query(
      `INSERT INTO webhook_circuits (url, state, failures, openings, "until", updated_at) VALUES (${this.p(6)}) ON CONFLICT (url) DO UPDATE SET state = excluded.state, failures = excluded.failures, openings = excluded.openings, "until" = excluded."until", updated_at = excluded.updated_at`,
      [url, c.state, c.failures, c.openings, c.until?.getTime() ?? null, now.getTime()],
    );
  }

  /** Turns an open circuit into a half-open one for one probe; false when another worker took the probe first. */
  async takeProbe(em: EntityManager, url: string, from: Circuit, to: Circuit, now: Date): Promise<boolean> {
    const won = await this.dialect.changed(
      em,
      `UPDATE webhook_circuits SET state = ${this.p(1)}, "until" = ${this.p(1, 2)}, updated_at = ${this.p(1, 3)} WHERE url = ${this.p(1, 4)} AND state = ${this.p(1, 5)} AND "until" = ${this.p(1, 6)}`,
      [to.state, to.until?.getTime() ?? null, now.getTime(), url, from.state, from.until?.getTime() ?? null],
      [url],
      { key: 'url' },
    );
    return won.size > 0;
  }

  private rows(em: EntityManager, rows: unknown): Delivery[] {
    return (rows as Array<Record<string, unknown>>).map((r) => entityFromRow(em, Delivery, r));
  }
}

/** inBatches in SQL, for a pending delivery `d`. */
const IN_BATCHES = `CASE WHEN d.batch_id IS NOT NULL OR (d.target <> '${REQUEST_TARGET}' AND NOT d.send_alone AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.id = d.target AND e.batch_max_events IS NOT NULL)) THEN 1 ELSE 0 END`;

// An earlier event of the same lane that cannot go now: in another batch, or not due (a retry, a hold), or due
// at the same ms (candidates are read in next_attempt_at order only, so that the endpoint's index stops after
// max_events rows; ties are not ordered, and a cut between two of one task could send the later first). Batched
// events wait behind it, so that a task's events reach a batching endpoint in order even across failed batches.
const BEHIND_IN_LANE =
  "(s.status = 'pending' AND s.sequence < d.sequence AND (s.batch_id IS NOT NULL OR s.next_attempt_at >= d.next_attempt_at))";

/** The columns of a batch's events that the batch needs: its body, order, attempt count, batch and age. */
const BATCH_EVENT_COLUMNS =
  'd.id, d.task_id, d.sequence, d.payload, d.attempts, d.batch_id, d.created_at, d.next_attempt_at, d.status';
