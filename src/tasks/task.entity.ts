import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from '../database/columns.js';
import type { TaskStatus } from './task-state.js';

export type TaskKind = 'video' | 'image';

/** The typed generation options Conduit clients send; everything else is in `params`. */
export interface GenerationOptions {
  duration?: number;
  size?: string;
  fps?: number;
  style?: string;
  response_format?: 'url' | 'b64_json';
  user?: string;
  seed?: number;
  n?: number;
}

export interface SimulateOptions {
  duration_ms?: number;
  fail_at_percent?: number;
  error?: string;
}

export interface WebhookRetryOptions {
  max_attempts?: number;
  schedule?: string[];
}

export interface ArtifactMetadata {
  duration?: number;
  resolution: string;
  fps?: number;
  file_size_bytes: number;
  mime_type: string;
  seed: number;
}

export interface TaskResult {
  created: number;
  data: Array<{ url?: string; b64_json?: string; revised_prompt?: string; metadata: ArtifactMetadata }>;
  model: string;
  usage?: Record<string, number>;
}

@Entity('tasks')
@Index('idx_tasks_tenant_id', ['tenantId', 'id'])
@Index('idx_tasks_status_updated', ['status', 'updatedAt'])
export class Task {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId: string;

  @Column({ type: 'varchar', length: 16 })
  kind: TaskKind;

  @Column({ type: 'varchar', length: 16 })
  status: TaskStatus;

  @Column({ type: 'integer', default: 0 })
  progress: number;

  @Column({ type: 'text', nullable: true })
  message: string | null;

  @Column({ type: 'varchar', length: 200 })
  model: string;

  @Column({ type: 'text' })
  prompt: string;

  @Column({ type: 'simple-json' })
  options: GenerationOptions;

  /** Model-specific parameters: top-level request fields Herald does not know, handed to the provider. */
  @Column({ type: 'simple-json' })
  params: Record<string, unknown>;

  /** The request's webhook_metadata, echoed as `metadata` in every webhook. */
  @Column({ type: 'simple-json', nullable: true })
  metadata: Record<string, unknown> | null;

  @Column({ name: 'webhook_url', type: 'text', nullable: true })
  webhookUrl: string | null;

  /** The caller's webhook headers as sealed JSON; values are never returned or logged. */
  @Column({ name: 'webhook_headers', type: 'text', nullable: true })
  webhookHeadersSealed: string | null;

  @Column({ name: 'webhook_header_names', type: 'simple-json', nullable: true })
  webhookHeaderNames: string[] | null;

  @Column({ name: 'webhook_events', type: 'simple-json', nullable: true })
  webhookEvents: string[] | null;

  @Column({ name: 'webhook_retry', type: 'simple-json', nullable: true })
  webhookRetry: WebhookRetryOptions | null;

  @Column({ type: 'simple-json', nullable: true })
  simulate: SimulateOptions | null;

  @Column({ name: 'timeout_seconds', type: 'integer', nullable: true })
  timeoutSeconds: number | null;

  @Column({ name: 'deadline_at', type: 'bigint', nullable: true, transformer: epochMs })
  deadlineAt: Date | null;

  @Column({ name: 'estimated_duration_ms', type: 'integer' })
  estimatedDurationMs: number;

  /** 1 for the first run; a retry of a failed task increments it. */
  @Column({ type: 'integer', default: 1 })
  attempt: number;

  @Column({ type: 'simple-json', nullable: true })
  result: TaskResult | null;

  @Column({ type: 'text', nullable: true })
  error: string | null;

  @Column({ name: 'error_code', type: 'varchar', length: 64, nullable: true })
  errorCode: string | null;

  /** The highest event sequence written for this task; events take the next number in the same transaction. */
  @Column({ name: 'last_sequence', type: 'integer', default: 0 })
  lastSequence: number;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs })
  updatedAt: Date;

  @Column({ name: 'started_at', type: 'bigint', nullable: true, transformer: epochMs })
  startedAt: Date | null;

  @Column({ name: 'completed_at', type: 'bigint', nullable: true, transformer: epochMs })
  completedAt: Date | null;

  /** Who runs the task, chosen by MODEL_ROUTES at create: the built-in simulator or external workers. */
  @Column({ type: 'varchar', length: 16, default: 'simulator' })
  provider: 'simulator' | 'workers';

  /** The live worker lease (workers only): at most one; every lease change is a guarded UPDATE on this row. */
  @Column({ name: 'lease_id', type: 'varchar', length: 64, nullable: true })
  leaseId: string | null;

  @Column({ name: 'lease_worker_id', type: 'varchar', length: 200, nullable: true })
  leaseWorkerId: string | null;

  /** The worker token that holds the lease: the only one its lease id answers (null: a lease from before that). */
  @Column({ name: 'lease_token_id', type: 'varchar', length: 36, nullable: true })
  leaseTokenId: string | null;

  @Column({ name: 'lease_expires_at', type: 'bigint', nullable: true, transformer: epochMs })
  leaseExpiresAt: Date | null;

  /** Leases given for the current attempt; at WORKER_MAX_LEASES a lost lease fails the task. */
  @Column({ name: 'lease_count', type: 'integer', default: 0 })
  leaseCount: number;

  /** W3C traceparent of the create request's span, when tracing was on: later spans of the task join its trace. */
  @Column({ name: 'trace_parent', type: 'varchar', length: 55, nullable: true })
  traceParent: string | null;
}
