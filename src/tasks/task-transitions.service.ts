import { Inject, Injectable } from '@nestjs/common';
import { EntityManager, In } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { MicroBatcher } from '../common/micro-batcher.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { insertMany, Sql, together } from '../database/sql.js';
import { insertAtCommit, UnitOfWork } from '../database/unit-of-work.js';
import { EventBus } from '../events/event-bus.js';
import { Metrics } from '../observability/metrics.js';
import { rememberTaskTrace } from '../observability/task-traces.js';
import { recordStep, tracingOn } from '../observability/tracing.js';
import type { Endpoint } from '../webhooks/endpoint.entity.js';
import type { Delivery } from '../webhooks/delivery.entity.js';
import { type OpenLanes, Outbox } from '../webhooks/outbox.js';
import { claimCursors, countByTenant, returnCursors } from './event-cursor.js';
import { TaskEvent, TaskEventType } from './task-event.entity.js';
import { isTerminal, TaskStatus } from './task-state.js';
import { Task } from './task.entity.js';
import { taskView } from './task-view.js';
import { fromOf, Guard, groupByShape, TaskPatch, TaskUpdate, updateTasks } from './task-updates.js';

export interface Change extends TaskUpdate {
  /** The task's tenant, when the caller has read the task: with a guard naming exactly one `from`, see applyRound. */
  tenantId?: string;
}

/** The event each status change reports. Timed-out tasks report as failures (status "timedout" in the data). */
export function eventTypeFor(to: TaskStatus, from?: TaskStatus): TaskEventType {
  switch (to) {
    case 'pending':
      return 'task.queued';
    case 'processing':
      return from === 'processing' ? 'task.progress' : 'task.started';
    case 'completed':
      return 'task.completed';
    case 'failed':
    case 'timedout':
      return 'task.failed';
    case 'cancelled':
      return 'task.cancelled';
  }
}

/** The task fields an event carries: enough for a webhook or a timeline without reading the task again. */
export function eventSnapshot(task: Task): Record<string, unknown> {
  return {
    status: task.status,
    progress: task.progress,
    message: task.message,
    error: task.error,
    error_code: task.errorCode,
    result: task.result,
    attempt: task.attempt,
  };
}

/** The next cursor of the tenant's claimed block, moving it on by one (events are numbered in the round's order). */
function bump(next: Map<string, number>, tenantId: string): number {
  const cursor = next.get(tenantId)!;
  next.set(tenantId, cursor + 1);
  return cursor;
}

/**
 * A generation step (a status change and its event: started, each progress, the end) as a span in the task's trace,
 * from when the change was asked for to its commit. Recorded here, where every runner's steps pass, in-process or not.
 */
function traceStep(task: Task, startedAt: number): void {
  rememberTaskTrace(task.id, task.traceParent);
  recordStep(task.traceParent, `generation ${task.status}`, startedAt, {
    'herald.task.id': task.id,
    'herald.task.status': task.status,
    'herald.task.progress': task.progress,
    'herald.task.attempt': task.attempt,
    'herald.event.sequence': task.lastSequence,
  });
}

/**
 * A round's changes grouped so that no wave touches a task twice: wave k holds the k-th change of each task, in
 * the order given (indexes into `taskIds`).
 */
export function wavesOf(taskIds: readonly string[]): number[][] {
  const seen = new Map<string, number>();
  const waves: number[][] = [];
  taskIds.forEach((id, at) => {
    const k = seen.get(id) ?? 0;
    seen.set(id, k + 1);
    (waves[k] ??= []).push(at);
  });
  return waves;
}

/**
 * The one place a task changes status. Each change is a conditional UPDATE guarded by the state machine
 * (so concurrent cancel / complete / timeout cannot both win) and writes its event, and the deliveries the
 * event causes, in the same transaction (the outbox).
 */
@Injectable()
export class TaskTransitions {
  // Concurrent changes (many tasks starting, progressing, finishing at once) share one transaction per round,
  // applied in the order they were asked for, so two changes of one task keep their order.
  // The round's new deliveries go into the queue straight after its commit (handOver), not through a relay round.
  private readonly changes = new MicroBatcher(async (batch: Change[]) => {
    const handOver: Delivery[] = [];
    const tasks = await this.uow.run((em) => this.applyRound(em, batch, handOver));
    this.outbox.handOver(handOver);
    return tasks;
  }, 64);

  constructor(
    private readonly uow: UnitOfWork,
    private readonly outbox: Outbox,
    private readonly bus: EventBus,
    private readonly metrics: Metrics,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /**
   * After a commit: relay the new deliveries now (unless they were handed over to the queue already), and tell
   * waiting clients (SSE, Prefer: wait) in any process.
   */
  committed(task: Task, { handedOver = false } = {}): void {
    if (!handedOver) this.outbox.kick();
    this.bus.publish({ taskId: task.id, sequence: task.lastSequence, status: task.status });
    this.bus.publishTenant(task.tenantId);
    if (isTerminal(task.status)) this.metrics.tasksFinished.inc({ kind: task.kind, status: task.status });
  }

  /** After a commit of new events of the tenant: wakes its tenant-wide streams in every process. */
  announce(tenantId: string): void {
    this.bus.publishTenant(tenantId);
  }

  /**
   * Returns the updated task, or null when the task was not in a state that allows `to` (or not at `attempt`).
   * `tenantId`: the task's tenant, from a caller that has read the task (see Change).
   */
  async apply(
    taskId: string,
    to: TaskStatus,
    patch: TaskPatch,
    guard: Guard = {},
    tenantId?: string,
  ): Promise<Task | null> {
    const started = tracingOn() ? Date.now() : 0;
    const task = await this.changes.submit({ taskId, to, patch, guard, tenantId });
    if (task) this.committed(task, { handedOver: true });
    if (task && started) traceStep(task, started);
    return task;
  }

  /** `handOver`: collects the deliveries planned, for the caller to hand over after its commit (else the relay). */
  async applyIn(
    em: EntityManager,
    taskId: string,
    to: TaskStatus,
    patch: TaskPatch,
    guard: Guard = {},
    handOver?: Delivery[],
  ): Promise<Task | null> {
    const started = tracingOn() ? Date.now() : 0;
    const task = (await this.applyRound(em, [{ taskId, to, patch, guard }], handOver))[0];
    if (task && started) traceStep(task, started);
    return task;
  }

  /** After the commit of changes made with applyManyIn: what apply does after its own round (`startedAt`: see stepStart). */
  settled(task: Task, startedAt: number): void {
    this.committed(task, { handedOver: true });
    if (startedAt) traceStep(task, startedAt);
  }

  /** When a change was asked for, for its trace span (0 when tracing is off). */
  stepStart(): number {
    return tracingOn() ? Date.now() : 0;
  }

  /** Several changes inside the caller's transaction (a worker leasing several tasks at once). */
  async applyManyIn(em: EntityManager, changes: readonly Change[], handOver?: Delivery[]): Promise<Array<Task | null>> {
    return changes.length ? this.applyRound(em, changes, handOver) : [];
  }

  /**
   * Changes in the order given, then their events and deliveries together: one read of the current statuses, the
   * conditional UPDATEs in waves (the first change of each task together, then the second, …), each returning its
   * changed row, and one INSERT each for the round's events and deliveries. Every statement waits its turn on
   * SQLite's single connection and every await waits for the event loop, so the number of waits is what matters.
   */
  private async applyRound(
    em: EntityManager,
    batch: readonly Change[],
    handOver?: Delivery[],
  ): Promise<Array<Task | null>> {
    const ids = [...new Set(batch.map((c) => c.taskId))];
    // When every change names the one status it moves from and its task's tenant (the worker protocol's, whose
    // callers read the task), that status stands in for the current one: the guarded UPDATE alone decides whether
    // it still holds, and the event type follows from it. One round trip fewer.
    const known = batch.every((c) => c.tenantId !== undefined && c.guard.from?.length === 1);
    const current = known
      ? ids.map((id) => {
          const first = batch.find((c) => c.taskId === id)!;
          return { id, status: first.guard.from![0], tenantId: first.tenantId! };
        })
      : await em.find(Task, { where: { id: In(ids) }, select: { id: true, status: true, tenantId: true } });
    const status = new Map(current.map((t) => [t.id, t.status]));
    const tenantOf = new Map(current.map((t) => [t.id, t.tenantId]));
    // SQLite: cursors for every change asked for are claimed with the first wave's UPDATEs (one wait fewer; the write
    // lock is the transaction's from BEGIN anyway), and those of changes that did not apply are given back with the
    // COMMIT. PostgreSQL runs statements one after another: claimed last, so the tenant's row is locked the least.
    const sqlite = !new Sql(em.connection).postgres;
    const asked = sqlite
      ? countByTenant(
          batch.flatMap((c) => (tenantOf.has(c.taskId) ? [{ task: { tenantId: tenantOf.get(c.taskId)! } }] : [])),
        )
      : undefined;
    let early: Map<string, number> | undefined;
    const claimEarly = async () => ((early = asked && (await claimCursors(em, asked))), []);
    // SQLite, for a caller that hands the fresh deliveries over: their lanes read now, with the first wave, so that
    // the events, their deliveries and the claim of the fresh ones all go with the COMMIT (Outbox.openLanes). Not on
    // PostgreSQL: there the relay may claim a pending delivery this round would supersede between the read and the
    // COMMIT, and the fresh one would then go out beside it (docs/BENCHMARKS.md, finding 41).
    let lanes: OpenLanes | undefined;
    const readLanes = async () => ((lanes = await this.outbox.openLanes(em, ids)), []);
    let endpoints: Map<string, Endpoint[]> | undefined;
    const lookup = async () => (
      (endpoints = await this.outbox.endpointsOf(
        em,
        current.map((t) => t.tenantId),
      )),
      []
    );
    const first = [lookup, claimEarly, ...(sqlite && handOver ? [readLanes] : [])];
    const applied: Array<{ at: number; taskId: string; type: TaskEventType; task: Task }> = [];
    const waves = wavesOf(batch.map((c) => c.taskId));
    for (const [w, wave] of waves.entries()) {
      // Different tasks, different rows: the wave's changes go as one UPDATE per shape (task-updates.ts), those
      // together, the first with the lookup of the endpoints the round's events are offered to.
      const allowed = wave.filter((at) => {
        const before = status.get(batch[at].taskId);
        return before !== undefined && fromOf(batch[at]).includes(before);
      });
      const groups = groupByShape(allowed.map((at) => batch[at])).map((g) => g.map((i) => allowed[i]));
      const updates = groups.map(
        (g) => () =>
          updateTasks(
            em,
            g.map((at) => batch[at]),
          ),
      );
      const answers = await together<Array<Task | null>>(em, w === 0 ? [...updates, ...first] : updates);
      const byAt = new Map<number, Task | null>();
      groups.forEach((g, k) => g.forEach((at, i) => byAt.set(at, answers[k][i])));
      const done = wave.map((at) => byAt.get(at) ?? null);
      // Each UPDATE returns its row as changed, so each event shows its own state, also of a task changed twice.
      const changed = wave.flatMap((at, i) =>
        done[i]
          ? [
              {
                at,
                taskId: batch[at].taskId,
                type: eventTypeFor(batch[at].to, status.get(batch[at].taskId)),
                task: done[i],
              },
            ]
          : [],
      );
      for (const a of changed) status.set(a.taskId, batch[a.at].to);
      applied.push(...changed);
    }
    applied.sort((a, b) => a.at - b.at);
    const counts = countByTenant(applied.map((a) => ({ task: { tenantId: tenantOf.get(a.taskId)! } })));
    const cursors = early ?? (await claimCursors(em, counts));
    for (const [tenantId, n] of asked ?? []) {
      const unused = n - (counts.get(tenantId) ?? 0);
      if (unused > 0) await returnCursors(em, tenantId, unused);
    }
    const result: Array<Task | null> = batch.map(() => null);
    for (const a of applied) result[a.at] = a.task;
    await this.recordEvents(
      em,
      applied.map((a) => ({ task: a.task, type: a.type })),
      handOver,
      { endpoints, cursors, lanes },
    );
    return result;
  }

  /** Events of several tasks in one multi-row INSERT, with their deliveries planned together. */
  async recordEvents(
    em: EntityManager,
    entries: ReadonlyArray<{ task: Task; type: TaskEventType }>,
    handOver?: Delivery[],
    read: { endpoints?: Map<string, Endpoint[]>; cursors?: Map<string, number>; lanes?: OpenLanes } = {},
  ): Promise<TaskEvent[]> {
    if (entries.length === 0) return [];
    // What the caller read already, alongside other work: the tenants' endpoints (Outbox.endpointsOf), the cursors
    // (claimCursors(em, countByTenant(entries))) and the lanes (Outbox.openLanes).
    const { endpoints, cursors, lanes } = read;
    const next = new Map(cursors ?? (await claimCursors(em, countByTenant(entries))));
    const events = entries.map(({ task, type }) =>
      em.create(TaskEvent, {
        id: uuidv7(),
        taskId: task.id,
        tenantId: task.tenantId,
        sequence: task.lastSequence,
        cursor: bump(next, task.tenantId),
        type,
        data: eventSnapshot(task),
        createdAt: task.updatedAt,
      }),
    );
    // Events and deliveries reference the task, not each other: both INSERTs go together.
    // With `lanes` nothing later in the transaction reads the events: they go with the COMMIT (writeAtCommit).
    await together<unknown>(em, [
      () => (lanes ? insertAtCommit(em, TaskEvent, events) : insertMany(em, TaskEvent, events)),
      () =>
        this.outbox.record(
          em,
          entries.map(({ task }, i) => ({
            task,
            event: events[i],
            snapshot: () => taskView(task, this.config.publicBaseUrl),
          })),
          handOver,
          endpoints,
          lanes,
        ),
    ]);
    return events;
  }
}
