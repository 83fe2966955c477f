import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, In, LessThan } from 'typeorm';
import { IntervalLoop } from '../common/interval-loop.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ArtifactStore } from '../generation/artifact-store.js';
import { IdempotencyKey } from '../idempotency/idempotency-key.entity.js';
import { TaskEvent } from '../tasks/task-event.entity.js';
import { Task } from '../tasks/task.entity.js';
import { TERMINAL_STATUSES } from '../tasks/task-state.js';
import { Delivery, DeliveryAttempt } from '../webhooks/delivery.entity.js';

const BATCH = 500;
const MAX_BATCHES = 200;

/**
 * Hourly, or ten times per retention period when that is shorter (a tiny RETENTION_DAYS in a soak), at least every
 * second: a purge then never lags the retention by more than a tenth of it.
 */
export function purgeIntervalMs(retentionDays: number): number {
  return Math.max(1_000, Math.min(3_600_000, Math.round((retentionDays * 86_400_000) / 10)));
}

export interface PurgeReport {
  tasks: number;
  deliveries: number;
  attempts: number;
  idempotencyKeys: number;
  /** The round stopped at MAX_BATCHES with more tasks due. */
  capped?: boolean;
}

/**
 * Deletes terminal tasks (with their events, deliveries, attempts and artifacts) finished more than
 * RETENTION_DAYS ago, old attempts and operational deliveries, and expired idempotency keys. Hourly (purgeIntervalMs),
 * in workers; a round that hit its batch bound runs again at once, so a fast-growing table is never left behind.
 */
@Injectable()
export class RetentionService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Retention');
  private readonly loop: IntervalLoop;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly artifacts: ArtifactStore,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.loop = new IntervalLoop('Retention', purgeIntervalMs(config.retentionDays), async () => {
      if ((await this.purge()).capped) void this.loop.kick();
    });
  }

  onApplicationBootstrap(): void {
    this.loop.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.loop.stop();
  }

  async purge(now = new Date()): Promise<PurgeReport> {
    const cutoff = new Date(now.getTime() - this.config.retentionDays * 86_400_000);
    const report: PurgeReport = { tasks: 0, deliveries: 0, attempts: 0, idempotencyKeys: 0 };
    for (let i = 0; i < MAX_BATCHES; i++) {
      const tasks = await this.db.getRepository(Task).find({
        where: { status: In([...TERMINAL_STATUSES]), completedAt: LessThan(cutoff) },
        select: { id: true },
        take: BATCH,
      });
      if (tasks.length === 0) break;
      const ids = tasks.map((t) => t.id);
      await this.uow.run(async (em) => {
        const deliveries = (await em.find(Delivery, { where: { taskId: In(ids) }, select: { id: true } })).map(
          (d) => d.id,
        );
        for (let j = 0; j < deliveries.length; j += BATCH) {
          report.attempts +=
            (await em.delete(DeliveryAttempt, { deliveryId: In(deliveries.slice(j, j + BATCH)) })).affected ?? 0;
        }
        report.deliveries += (await em.delete(Delivery, { taskId: In(ids) })).affected ?? 0;
        await em.delete(TaskEvent, { taskId: In(ids) });
        report.tasks += (await em.delete(Task, { id: In(ids) })).affected ?? 0;
      });
      await this.artifacts.removeFor(ids);
      if (tasks.length < BATCH) break;
      if (i === MAX_BATCHES - 1) report.capped = true;
    }
    // Delete criteria do not pass through column transformers: compare epoch milliseconds explicitly.
    const olderThan =
      (entity: typeof DeliveryAttempt | typeof Delivery | typeof IdempotencyKey, condition: string, at: Date) =>
      (em: EntityManager) =>
        em
          .createQueryBuilder()
          .delete()
          .from(entity)
          .where(condition, { at: at.getTime() })
          .execute()
          .then((r) => r.affected ?? 0);
    await this.uow.run(async (em) => {
      report.attempts += await olderThan(DeliveryAttempt, 'started_at < :at', cutoff)(em);
      report.deliveries += await olderThan(Delivery, 'task_id IS NULL AND created_at < :at', cutoff)(em);
      report.idempotencyKeys += await olderThan(IdempotencyKey, 'expires_at < :at', now)(em);
    });
    if (report.tasks || report.deliveries || report.attempts)
      this.logger.log(`purged ${JSON.stringify(report)} older than ${cutoff.toISOString()}`);
    return report;
  }
}
