import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs } from '../database/columns.js';
import type { Circuit } from './circuit-breaker.js';

export type EndpointStatus = 'enabled' | 'disabled';

/** A registered webhook endpoint (seeds/002, 004): every subscribed task event is sent to it as an envelope. */
@Entity('webhook_endpoints')
export class Endpoint {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId: string;

  @Column({ type: 'text' })
  url: string;

  @Column({ type: 'varchar', length: 500, nullable: true })
  description: string | null;

  /** Subscribed event types; `*` for all. */
  @Column({ type: 'simple-json' })
  events: string[];

  @Column({ name: 'headers_sealed', type: 'text', nullable: true })
  headersSealed: string | null;

  @Column({ name: 'header_names', type: 'simple-json' })
  headerNames: string[];

  @Column({ name: 'secret_sealed', type: 'text' })
  secretSealed: string;

  /** After a rotation the old secret keeps signing (alongside the new one) until this time. */
  @Column({ name: 'previous_secret_sealed', type: 'text', nullable: true })
  previousSecretSealed: string | null;

  @Column({ name: 'previous_secret_expires_at', type: 'bigint', nullable: true, transformer: epochMs })
  previousSecretExpiresAt: Date | null;

  @Column({ type: 'varchar', length: 16 })
  status: EndpointStatus;

  @Column({ name: 'disabled_reason', type: 'text', nullable: true })
  disabledReason: string | null;

  @Column({ name: 'disabled_at', type: 'bigint', nullable: true, transformer: epochMs })
  disabledAt: Date | null;

  /** Start of the current run of failed attempts; cleared by any success. */
  @Column({ name: 'failing_since', type: 'bigint', nullable: true, transformer: epochMs })
  failingSince: Date | null;

  @Column({ name: 'last_delivery_at', type: 'bigint', nullable: true, transformer: epochMs })
  lastDeliveryAt: Date | null;

  @Column({ name: 'last_status_code', type: 'integer', nullable: true })
  lastStatusCode: number | null;

  @Column({ name: 'last_outcome', type: 'varchar', length: 16, nullable: true })
  lastOutcome: string | null;

  /** Requests per second this endpoint takes (across every worker); null = unlimited. */
  @Column({ name: 'rate_limit_per_second', type: 'integer', nullable: true })
  rateLimitPerSecond: number | null;

  /** Batch delivery: up to this many events per request (null = one event per request)… */
  @Column({ name: 'batch_max_events', type: 'integer', nullable: true })
  batchMaxEvents: number | null;

  /** …waiting at most this long for a batch to fill. */
  @Column({ name: 'batch_max_wait_ms', type: 'integer', nullable: true })
  batchMaxWaitMs: number | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs })
  updatedAt: Date;

  /** Not a column: the circuit of its URL, filled in by the service for views. */
  circuit?: Circuit;
}
