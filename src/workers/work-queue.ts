import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { MicroBatcher } from '../common/micro-batcher.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { Sql } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { EventBus } from '../events/event-bus.js';
import { Metrics } from '../observability/metrics.js';
import { Change, TaskTransitions } from '../tasks/task-transitions.service.js';
import type { Task, TaskKind } from '../tasks/task.entity.js';
import type { Delivery } from '../webhooks/delivery.entity.js';
import { OutboxSignal } from '../webhooks/outbox-signal.js';
import { newLeaseId } from './lease-rules.js';
import { globToSql, isGlob } from '../config/model-routes.js';

interface WaitingRow {
  id: string;
  status: 'pending' | 'processing';
  attempt: number;
  lease_count: number | string;
  created_at: number | string;
  updated_at: number | string;
}

interface ClaimRequest {
  workerId: string;
  models: readonly string[];
  kinds: readonly TaskKind[];
  max: number;
  gone?: AbortSignal;
}

/**
 * The queue of worker-routed tasks is the tasks table itself: a task waits with provider 'workers' and no lease,
 * and a lease is a guarded UPDATE of its row. So a Redis flush or a restart loses no job and no lease, and the
 * same rules (TaskTransitions) write the events and webhooks. Redis only carries the "work available" wake-up.
 */
@Injectable()
export class WorkQueue {
  private readonly sql: Sql;

  constructor(
    @InjectDataSource() db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly transitions: TaskTransitions,
    private readonly outbox: OutboxSignal,
    private readonly bus: EventBus,
    private readonly metrics: Metrics,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.sql = new Sql(db);
  }

  /**
   * Leases up to `max` of the oldest waiting tasks whose model matches one of `models` (exact ids or globs) and
   * whose kind is one of `kinds`. On PostgreSQL the candidates are locked with SKIP LOCKED, so API processes
   * leasing at once take different tasks; on SQLite the write transaction is the lock. Each claim is also
   * guarded by "no lease yet", so a task can never be leased twice. A request whose worker hung up (`gone`)
   * before its turn leases nothing.
   */
  claim(workerId: string, models: readonly string[], kinds: readonly TaskKind[], max: number, gone?: AbortSignal): Promise<Task[]> {
    return this.claims.submit({ workerId, models, kinds, max, gone });
  }

  // Every work signal wakes each waiting long poll, and each finished job brings its worker straight back: the
  // claims arriving within one round share one transaction (one look per kind of request, one round of
  // guarded UPDATEs and events), rather than queueing one transaction each behind SQLite's single connection.
  private readonly claims = new MicroBatcher((batch: ClaimRequest[]) => this.claimRound(batch), 64);

  private async claimRound(batch: readonly ClaimRequest[]): Promise<Task[][]> {
    const leaseMs = Math.round(this.config.workers.leaseSeconds * 1000);
    const handOver: Delivery[] = [];
    const now = new Date();
    const live = batch.map((r, i) => ({ r, i })).filter(({ r }) => !r.gone?.aborted);
    if (live.length === 0) return batch.map(() => []);
    const claimed = await this.uow.run(async (em) => {
      // Requests asking for the same models and kinds share one look; the rows go to them in arrival order.
      const groups = new Map<string, Array<{ r: ClaimRequest; i: number }>>();
      for (const one of live) {
        const key = JSON.stringify([one.r.models, one.r.kinds]);
        const group = groups.get(key);
        if (group) group.push(one);
        else groups.set(key, [one]);
      }
      const picks: Array<{ i: number; row: WaitingRow }> = [];
      const taken: string[] = [];
      for (const group of groups.values()) {
        const { models, kinds } = group[0].r;
        const want = group.reduce((n, { r }) => n + r.max, 0);
        const { text, params } = this.waitingQuery(models, kinds, want, now, taken);
        const rows = await em.query<WaitingRow[]>(text, params);
        let next = 0;
        for (const { r, i } of group) {
          for (let k = 0; k < r.max && next < rows.length; k++) {
            picks.push({ i, row: rows[next] });
            taken.push(rows[next++].id);
          }
        }
      }
      if (picks.length === 0) return [];
      const expires = new Date(now.getTime() + leaseMs);
      const changes: Change[] = picks.map(({ i, row }) => ({
        taskId: row.id,
        to: 'processing',
        patch: {
          leaseId: newLeaseId(row.id),
          leaseWorkerId: batch[i].workerId,
          leaseExpiresAt: expires,
          leaseCount: Number(row.lease_count) + 1,
          ...(row.status === 'pending' ? { startedAt: now, progress: 0, message: 'Generation started' } : { message: 'Resumed by a worker' }),
        },
        guard: { from: [row.status], attempt: row.attempt, lease: { id: null } },
      }));
      const tasks = await this.transitions.applyManyIn(em, changes, handOver);
      return picks.flatMap((pick, n) => (tasks[n] ? [{ ...pick, task: tasks[n] }] : []));
    });
    this.outbox.handOver(handOver);
    const out: Task[][] = batch.map(() => []);
    for (const { i, row, task } of claimed) {
      out[i].push(task);
      this.transitions.committed(task, { handedOver: true });
      const since = Number(row.status === 'pending' ? row.created_at : row.updated_at);
      this.metrics.leaseWait.observe(Math.max(0, now.getTime() - since) / 1000);
    }
    if (claimed.length) this.metrics.workerLeases.inc({ outcome: 'granted' }, claimed.length);
    return out;
  }

  /** Tells long-polling workers (in every process) that a task for `model` is ready for a lease. */
  announce(task: Pick<Task, 'model' | 'kind'>): void {
    this.bus.publishWork({ model: task.model, kind: task.kind });
  }

  /** `taken`: ids already claimed earlier in this transaction (on PostgreSQL our own row locks do not skip them). */
  private waitingQuery(models: readonly string[], kinds: readonly TaskKind[], max: number, now: Date, taken: readonly string[] = []): { text: string; params: unknown[] } {
    const params: unknown[] = [];
    // Placeholders are taken in the order they appear in the text (SQLite's ? are positional).
    const p = (value: unknown) => (params.push(value), this.sql.postgres ? `$${params.length}` : '?');
    const kindTerm = `kind IN (${kinds.map(p).join(', ')})`;
    const exact = models.filter((m) => !isGlob(m));
    const terms = exact.length ? [`model IN (${exact.map(p).join(', ')})`] : [];
    for (const glob of models.filter(isGlob)) {
      const { operator, pattern } = globToSql(glob, this.sql.postgres ? 'postgres' : 'sqlite');
      terms.push(this.sql.postgres ? `model ${operator} ${p(pattern)} ESCAPE '\\'` : `model ${operator} ${p(pattern)}`);
    }
    // The first three terms are the partial index's predicate (idx_tasks_worker_queue), oldest first by UUIDv7 id.
    const text =
      `SELECT id, status, attempt, lease_count, created_at, updated_at FROM tasks ` +
      `WHERE provider = 'workers' AND lease_id IS NULL AND status IN ('pending', 'processing') ` +
      `AND ${kindTerm} AND (${terms.join(' OR ')}) AND (deadline_at IS NULL OR deadline_at > ${p(now.getTime())}) ` +
      (taken.length ? `AND id NOT IN (${taken.map(p).join(', ')}) ` : '') +
      `ORDER BY id LIMIT ${p(max)}${this.sql.postgres ? ' FOR UPDATE SKIP LOCKED' : ''}`;
    return { text, params };
  }
}
