import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { bigintNumber, epochMs } from '../database/columns.js';
import type { TaskEventType } from '../events/event-catalogue.js';

// The event types are the catalogue's (events/), so delivery and streams name them without importing tasks.
export { TASK_EVENT_TYPES, type TaskEventType } from '../events/event-catalogue.js';

/** One thing that happened to a task, written in the same transaction as the state change (the outbox). */
@Entity('task_events')
@Index('uq_task_events_sequence', ['taskId', 'sequence'], { unique: true })
@Index('uq_task_events_cursor', ['tenantId', 'cursor'], { unique: true })
export class TaskEvent {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'task_id', type: 'varchar', length: 36 })
  taskId: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId: string;

  @Column({ type: 'integer' })
  sequence: number;

  /** The event's place in its tenant's stream (see TenantCursor): dense, and committed in this order. */
  @Column({ name: 'event_cursor', type: 'bigint', transformer: bigintNumber })
  cursor: number;

  @Column({ type: 'varchar', length: 32 })
  type: TaskEventType;

  /** The task snapshot fields this event reports (status, progress, message, error, result). */
  @Column({ type: 'simple-json' })
  data: Record<string, unknown>;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt: Date;
}
