import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
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
    const tasks = await this.uow.run(async (em) => {
      const changed: Array<Task | null> = [];
      for (const c of batch) changed.push(await this.applyIn(em, c.taskId, c.to, c.patch, c.guard, handOver));
      return changed;
    });
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
    const from = guard.from ?? sourcesOf(to);
    const before = await em.findOne(Task, { where: { id: taskId }, select: { id: true, status: true } });
    if (!before || !from.includes(before.status)) return null;
    const query = em
      .createQueryBuilder()
      .update(Task)
      .set({ ...patch, status: to, updatedAt: new Date(), lastSequence: () => 'last_sequence + 1' })
      .where('id = :id AND status IN (:...from)', { id: taskId, from });
    if (guard.attempt !== undefined) query.andWhere('attempt = :attempt', { attempt: guard.attempt });
    const result = await query.execute();
    if (!result.affected) return null;
    const task = await em.findOneByOrFail(Task, { id: taskId });
    await this.recordEvents(em, [{ task, type: eventTypeFor(to, before.status) }], handOver);
    return task;
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
