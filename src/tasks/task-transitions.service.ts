import { Injectable } from '@nestjs/common';
import { EntityManager, In } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { MicroBatcher } from '../common/micro-batcher.js';
import { insertMany } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { EventBus } from '../events/event-bus.js';
import { Metrics } from '../observability/metrics.js';
import { DeliveryPlanner } from '../webhooks/delivery-planner.js';
import type { Delivery } from '../webhooks/delivery.entity.js';
import { OutboxSignal } from '../webhooks/outbox-signal.js';
import { TaskEvent, TaskEventType } from './task-event.entity.js';
import { isTerminal, sourcesOf, TaskStatus } from './task-state.js';
import { Task } from './task.entity.js';

type Guard = { from?: TaskStatus[]; attempt?: number };
interface Change {
  taskId: string;
  to: TaskStatus;
  patch: TaskPatch;
  guard: Guard;
}

export type TaskPatch = Partial<Pick<Task, 'progress' | 'message' | 'result' | 'error' | 'errorCode' | 'startedAt' | 'completedAt' | 'attempt' | 'deadlineAt'>>;

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
    private readonly planner: DeliveryPlanner,
    private readonly outbox: OutboxSignal,
    private readonly bus: EventBus,
    private readonly metrics: Metrics,
  ) {}

  /**
   * After a commit: relay the new deliveries now (unless they were handed over to the queue already), and tell
   * waiting clients (SSE, Prefer: wait) in any process.
   */
  committed(task: Task, { handedOver = false } = {}): void {
    if (!handedOver) this.outbox.kick();
    this.bus.publish({ taskId: task.id, sequence: task.lastSequence, status: task.status });
    if (isTerminal(task.status)) this.metrics.tasksFinished.inc({ kind: task.kind, status: task.status });
  }

  /** Returns the updated task, or null when the task was not in a state that allows `to` (or not at `attempt`). */
  async apply(taskId: string, to: TaskStatus, patch: TaskPatch, guard: Guard = {}): Promise<Task | null> {
    const task = await this.changes.submit({ taskId, to, patch, guard });
    if (task) this.committed(task, { handedOver: true });
    return task;
  }

  /** `handOver`: collects the deliveries planned, for the caller to hand over after its commit (else the relay). */
  async applyIn(em: EntityManager, taskId: string, to: TaskStatus, patch: TaskPatch, guard: Guard = {}, handOver?: Delivery[]): Promise<Task | null> {
    return (await this.applyRound(em, [{ taskId, to, patch, guard }], handOver))[0];
  }

  /**
   * Changes in the order given, then their events and deliveries together: one read of the current statuses, a
   * conditional UPDATE per change, one read-back of the changed tasks, and one INSERT each for the round's events
   * and deliveries (every statement waits its turn on SQLite's single connection, so the count is what matters).
   * A task changed twice in one round is read back after each change, so each event shows its own state.
   */
  private async applyRound(em: EntityManager, batch: readonly Change[], handOver?: Delivery[]): Promise<Array<Task | null>> {
    const ids = [...new Set(batch.map((c) => c.taskId))];
    const repeated = new Set(batch.filter((c, i) => batch.findIndex((o) => o.taskId === c.taskId) !== i).map((c) => c.taskId));
    const status = new Map((await em.find(Task, { where: { id: In(ids) }, select: { id: true, status: true } })).map((t) => [t.id, t.status]));
    const applied: Array<{ at: number; taskId: string; type: TaskEventType; task?: Task }> = [];
    for (const [at, { taskId, to, patch, guard }] of batch.entries()) {
      const before = status.get(taskId);
      const from = guard.from ?? sourcesOf(to);
      if (!before || !from.includes(before)) continue;
      const query = em
        .createQueryBuilder()
        .update(Task)
        .set({ ...patch, status: to, updatedAt: new Date(), lastSequence: () => 'last_sequence + 1' })
        .where('id = :id AND status IN (:...from)', { id: taskId, from });
      if (guard.attempt !== undefined) query.andWhere('attempt = :attempt', { attempt: guard.attempt });
      if (!(await query.execute()).affected) continue;
      status.set(taskId, to);
      const task = repeated.has(taskId) ? await em.findOneByOrFail(Task, { id: taskId }) : undefined;
      applied.push({ at, taskId, type: eventTypeFor(to, before), task });
    }
    const readBack = applied.filter((a) => !a.task).map((a) => a.taskId);
    const fresh = new Map((readBack.length ? await em.find(Task, { where: { id: In(readBack) } }) : []).map((t) => [t.id, t]));
    const changed: Array<Task | null> = batch.map(() => null);
    for (const a of applied) changed[a.at] = a.task ??= fresh.get(a.taskId)!;
    await this.recordEvents(em, applied.map((a) => ({ task: a.task!, type: a.type })), handOver);
    return changed;
  }

  /** Events of several tasks in one multi-row INSERT, with their deliveries planned together. */
  async recordEvents(em: EntityManager, entries: ReadonlyArray<{ task: Task; type: TaskEventType }>, handOver?: Delivery[]): Promise<TaskEvent[]> {
    const events = entries.map(({ task, type }) =>
      em.create(TaskEvent, {
        id: uuidv7(),
        taskId: task.id,
        tenantId: task.tenantId,
        sequence: task.lastSequence,
        type,
        data: eventSnapshot(task),
        createdAt: task.updatedAt,
      }),
    );
    await insertMany(em, TaskEvent, events);
    await this.planner.planMany(em, entries.map(({ task }, i) => ({ task, event: events[i] })), handOver);
    return events;
  }
}
