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
import { Outbox } from '../webhooks/outbox.js';
import { newLeaseId } from './lease-rules.js';
import { globToSql, isGlob } from '../config/model-routes.js';

interface WaitingRow {
  id: string;
  tenant_id: string;
  status: 'pending' | 'processing';
  attempt: number;
  lease_count: number | string;
  created_at: number | string;
  updated_at: number | string;
}

interface ClaimRequest {
  workerId: string;
  /** The worker token asking: the only one the lease will answer. */
  tokenId: string;
  models: readonly string[];
  kinds: readonly TaskKind[];
  max: number;
  gone?: AbortSignal;
}

type RoundItem = { claim: ClaimRequest } | { change: Change; startedAt: number };

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
    private readonly outbox: Outbox,
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
  claim(
    workerId: string,
    tokenId: string,
    models: readonly string[],
    kinds: readonly TaskKind[],
    max: number,
    gone?: AbortSignal,
  ): Promise<Task[]> {
    return this.rounds.submit({ claim: { workerId, tokenId, models, kinds, max, gone } }) as Promise<Task[]>;
  }

  /**
   * A change of a leased task (complete, fail, progress): applied in the same round as the claims, so a worker's
   * complete and the next lease requests share one transaction. Resolves to the changed task, or null when its
   * guard no longer held. `change.tenantId` and a one-status guard spare the round its read of the statuses.
   */
  change(change: Change): Promise<Task | null> {
    // PostgreSQL: the changes keep their own rounds, on a pooled connection beside the claims'. The shared round
    // saves transactions on SQLite's single connection; on PostgreSQL it was not measured to help.
    if (this.sql.postgres) return this.transitions.apply(change.taskId, change.to, change.patch, change.guard);
    return this.rounds.submit({ change, startedAt: this.transitions.stepStart() }) as Promise<Task | null>;
  }

  // Every work signal wakes each waiting long poll, each finished job brings its worker straight back, and its
  // complete comes just before: the claims and lease changes arriving within one round share one transaction
  // (one look per kind of request, one round of guarded UPDATEs and events), rather than queueing one
  // transaction each behind SQLite's single connection.
  private readonly rounds = new MicroBatcher((batch: RoundItem[]) => this.round(batch), 64);

  private async round(items: readonly RoundItem[]): Promise<Array<Task[] | Task | null>> {
    const leaseMs = Math.round(this.config.workers.leaseSeconds * 1000);
    const handOver: Delivery[] = [];
    const now = new Date();
    const changes = items.flatMap((item, i) => ('change' in item ? [{ i, change: item.change }] : []));
    const live = items.flatMap((item, i) =>
      'claim' in item && !item.claim.gone?.aborted ? [{ r: item.claim, i }] : [],
    );
    const out: Array<Task[] | Task | null> = items.map((item) => ('claim' in item ? [] : null));
    if (live.length === 0 && changes.length === 0) return out;
    const { claimed, changed } = await this.uow.run(async (em) => {
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
      const expires = new Date(now.getTime() + leaseMs);
      const claims: Change[] = picks.map(({ i, row }) => {
        const { workerId, tokenId } = (items[i] as { claim: ClaimRequest }).claim;
        return {
          taskId: row.id,
          tenantId: row.tenant_id,
          to: 'processing',
          patch: {
            leaseId: newLeaseId(row.id),
            leaseWorkerId: workerId,
            leaseTokenId: tokenId,
            leaseExpiresAt: expires,
            leaseCount: Number(row.lease_count) + 1,
            ...(row.status === 'pending'
              ? { startedAt: now, progress: 0, message: 'Generation started' }
              : { message: 'Resumed by a worker' }),
          },
          guard: { from: [row.status], attempt: row.attempt, lease: { id: null } },
        };
      });
      // The lease changes first: a task a worker gives back in this round is not among the rows looked at.
      const tasks = await this.transitions.applyManyIn(em, [...changes.map((c) => c.change), ...claims], handOver);
      return {
        changed: changes.map((c, n) => ({ ...c, task: tasks[n] })),
        claimed: picks.flatMap((pick, n) =>
          tasks[changes.length + n] ? [{ ...pick, task: tasks[changes.length + n]! }] : [],
        ),
      };
    });
    this.outbox.handOver(handOver);
    for (const { i, task } of changed) {
      out[i] = task;
      if (task) this.transitions.settled(task, (items[i] as { startedAt: number }).startedAt);
    }
    for (const { i, row, task } of claimed) {
      (out[i] as Task[]).push(task);
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
  private waitingQuery(
    models: readonly string[],
    kinds: readonly TaskKind[],
    max: number,
    now: Date,
    taken: readonly string[] = [],
  ): { text: string; params: unknown[] } {
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
      `SELECT id, tenant_id, status, attempt, lease_count, created_at, updated_at FROM tasks ` +
      `WHERE provider = 'workers' AND lease_id IS NULL AND status IN ('pending', 'processing') ` +
      `AND ${kindTerm} AND (${terms.join(' OR ')}) AND (deadline_at IS NULL OR deadline_at > ${p(now.getTime())}) ` +
      (taken.length ? `AND id NOT IN (${taken.map(p).join(', ')}) ` : '') +
      `ORDER BY id LIMIT ${p(max)}${this.sql.postgres ? ' FOR UPDATE SKIP LOCKED' : ''}`;
    return { text, params };
  }
}
