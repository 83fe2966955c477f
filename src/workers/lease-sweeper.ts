import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { IntervalLoop } from '../common/interval-loop.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { Sql } from '../database/sql.js';
import { Metrics } from '../observability/metrics.js';
import { TaskTransitions } from '../tasks/task-transitions.service.js';
import type { TaskKind } from '../tasks/task.entity.js';
import { afterLostLease } from './lease-rules.js';
import { WorkQueue } from './work-queue.js';

const BATCH = 200;

interface ExpiredRow {
  id: string;
  attempt: number;
  lease_id: string;
  lease_count: number | string;
  model: string;
  kind: TaskKind;
}

/**
 * Finds leases not renewed in time (a worker killed, cut off, or stuck) and gives their tasks back to the queue
 * with their progress kept, or fails them with `worker_lost` once they have had WORKER_MAX_LEASES leases. Runs
 * in every worker process; the lease-id guard makes two sweepers (or a late heartbeat) harmless.
 */
@Injectable()
export class LeaseSweeper implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('LeaseSweeper');
  private readonly loop: IntervalLoop;
  private readonly sql: Sql;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly transitions: TaskTransitions,
    private readonly queue: WorkQueue,
    private readonly metrics: Metrics,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.sql = new Sql(db);
    this.loop = new IntervalLoop('LeaseSweeper', config.sweepIntervalMs, () => this.sweep());
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  async sweep(): Promise<{ requeued: number; lost: number }> {
    const rows = await this.db.query<ExpiredRow[]>(
      `SELECT id, attempt, lease_id, lease_count, model, kind FROM tasks WHERE lease_id IS NOT NULL AND lease_expires_at <= ${this.sql.params(1)} AND status = 'processing' ORDER BY lease_expires_at LIMIT ${BATCH}`,
      [Date.now()],
    );
    let requeued = 0;
    let lost = 0;
    const max = this.config.workers.maxLeases;
    for (const row of rows) {
      // Guarded by this very lease id: a lease given again meanwhile, or a finish, leaves the row alone.
      const guard = { from: ['processing' as const], attempt: row.attempt, lease: { id: row.lease_id } };
      if (afterLostLease(Number(row.lease_count), max) === 'fail') {
        const failed = await this.transitions.apply(
          row.id,
          'failed',
          {
            error: `No worker finished the task in ${max} lease(s) (WORKER_MAX_LEASES): the last one stopped renewing its lease`,
            errorCode: 'worker_lost',
            message: 'Worker lost',
            completedAt: new Date(),
            leaseId: null,
            leaseExpiresAt: null,
          },
          guard,
        );
        if (failed) lost++;
      } else {
        const back = await this.transitions.apply(
          row.id,
          'processing',
          { message: 'Worker lost; waiting for another worker', leaseId: null, leaseExpiresAt: null },
          guard,
        );
        if (back) {
          requeued++;
          this.queue.announce(row);
        }
      }
    }
    if (requeued) this.metrics.workerLeases.inc({ outcome: 'expired' }, requeued);
    if (lost) this.metrics.workerLeases.inc({ outcome: 'worker_lost' }, lost);
    if (requeued || lost)
      this.logger.log(`expired leases: ${requeued} back in the queue, ${lost} failed (worker_lost)`);
    return { requeued, lost };
  }
}
