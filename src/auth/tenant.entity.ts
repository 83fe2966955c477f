import { Column, Entity, PrimaryColumn } from 'typeorm';
import { bigintNumber, epochMs } from '../database/columns.js';

@Entity('tenants')
export class Tenant {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 100, unique: true })
  name: string;

  /** The signing secret for per-request webhooks, sealed with the SecretBox. */
  @Column({ name: 'webhook_secret', type: 'text' })
  webhookSecretSealed: string;

  /** The last event cursor handed out to this tenant (see src/tasks/event-cursor.ts). */
  @Column({ name: 'event_cursor', type: 'bigint', default: 0, transformer: bigintNumber })
  eventCursor: number;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs })
  createdAt: Date;
}
