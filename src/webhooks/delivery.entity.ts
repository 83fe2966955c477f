import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs } from '../database/columns.js';
import type { CircuitStateName } from './circuit-breaker.js';
import type { TaskEventType } from '../events/event-catalogue.js';

/** Task events, plus the operational events of registered endpoints. */
export type DeliveryEventType = TaskEventType | 'webhook.test' | 'webhook.disabled';

export const DELIVERY_STATUSES = ['pending', 'sending', 'succeeded', 'failed', 'superseded'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** The per-request webhook target of a task; registered endpoints use their own id. */
export const REQUEST_TARGET = 'request';

/**
 * One event to one target: the outbox row. It keeps its event id (the `webhook-id`) across retries and holds
 * the exact serialized body, so every attempt signs and sends the same bytes.
 */
@Entity('deliveries')
export class Delivery {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId: string;

  @Column({ name: 'task_id', type: 'varchar', length: 36, nullable: true })
  taskId: string | null;

  @Column({ name: 'event_id', type: 'varchar', length: 36 })
  eventId: string;

  @Column({ name: 'event_type', type: 'varchar', length: 32 })
  eventType: DeliveryEventType;

  @Column({ type: 'integer' })
  sequence: number;

  /** `request` for the task's webhook_url, else the registered endpoint's id. */
  @Column({ type: 'varchar', length: 36 })
  target: string;

  @Column({ type: 'text' })
  url: string;

  /** The caller's headers, sealed (same ciphertext as on the task). */
  @Column({ name: 'headers_sealed', type: 'text', nullable: true })
  headersSealed: string | null;

  @Column({ type: 'text' })
  payload: string;

  @Column({ type: 'varchar', length: 16 })
  status: DeliveryStatus;

  @Column({ type: 'integer', default: 0 })
  attempts: number;

  /** Delays before each attempt, in ms (the first is usually 0). Its length is the attempt budget. */
  @Column({ type: 'simple-json' })
  schedule: number[];

  @Column({ name: 'next_attempt_at', type: 'bigint', transformer: epochMs })
  nextAttemptAt: Date;

  /** Set when the relay has put the job into Redis; cleared to make the relay put it there again. */
  @Column({ name: 'dispatched_at', type: 'bigint', nullable: true, transformer: epochMs })
  dispatchedAt: Date | null;

  @Column({ name: 'last_status_code', type: 'integer', nullable: true })
  lastStatusCode: number | null;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError: string | null;

  /** Batch delivery: the id of the delivery whose request carries this one (its own id when it carries it). */
  @Column({ name: 'batch_id', type: 'varchar', length: 36, nullable: true })
  batchId: string | null;

  /** A redelivery of one event: sent alone even to an endpoint that takes batches. */
  @Column({ name: 'send_alone', type: 'boolean', default: false })
  sendAlone: boolean;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs })
  updatedAt: Date;

  @Column({ name: 'completed_at', type: 'bigint', nullable: true, transformer: epochMs })
  completedAt: Date | null;

  /** Not stored: set by the planner on a new delivery that goes in its endpoint's batches (for the hand-over). */
  inBatches?: boolean;
}

/** One HTTP attempt of a delivery, as the receiver answered it. */
@Entity('delivery_attempts')
export class DeliveryAttempt {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'delivery_id', type: 'varchar', length: 36 })
  deliveryId: string;

  @Column({ type: 'integer' })
  number: number;

  @Column({ name: 'started_at', type: 'bigint', transformer: epochMs })
  startedAt: Date;

  @Column({ name: 'duration_ms', type: 'integer' })
  durationMs: number;

  @Column({ name: 'status_code', type: 'integer', nullable: true })
  statusCode: number | null;

  @Column({ type: 'text', nullable: true })
  error: string | null;

  /** The first 1 KB of the response body. */
  @Column({ name: 'response_snippet', type: 'text', nullable: true })
  responseSnippet: string | null;

  /** The request headers as sent, with the caller's values and signatures masked. */
  @Column({ name: 'request_headers', type: 'simple-json' })
  requestHeaders: Record<string, string>;

  @Column({ type: 'varchar', length: 16 })
  outcome: 'succeeded' | 'retry' | 'failed';
}

/** The circuit of one target URL while it is not plainly closed (no row = closed, no failures). */
@Entity('webhook_circuits')
export class WebhookCircuit {
  @PrimaryColumn({ type: 'varchar', length: 2048 })
  url: string;

  @Column({ type: 'varchar', length: 16 })
  state: CircuitStateName;

  @Column({ type: 'integer' })
  failures: number;

  @Column({ type: 'integer' })
  openings: number;

  @Column({ type: 'bigint', nullable: true, transformer: epochMs })
  until: Date | null;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs })
  updatedAt: Date;
}
