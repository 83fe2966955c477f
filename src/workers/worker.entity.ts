import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs } from '../database/columns.js';

/** A worker as last seen asking for leases (or renewing one): for operators and model discovery. */
@Entity('workers')
export class Worker {
  /** The worker_id the worker sends. */
  @PrimaryColumn({ type: 'varchar', length: 200 })
  id: string;

  @Column({ name: 'token_id', type: 'varchar', length: 36 })
  tokenId: string;

  @Column({ type: 'varchar', length: 200, nullable: true })
  label: string | null;

  /** The models (exact ids or globs) of its last lease request. */
  @Column({ type: 'simple-json' })
  models: string[];

  @Column({ type: 'simple-json' })
  kinds: string[];

  @Column({ name: 'first_seen_at', type: 'bigint', transformer: epochMs })
  firstSeenAt: Date;

  @Column({ name: 'last_seen_at', type: 'bigint', transformer: epochMs })
  lastSeenAt: Date;
}
