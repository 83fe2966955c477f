import { Controller, Get } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource, Not, IsNull } from 'typeorm';
import { Sql } from '../database/sql.js';
import { TenantId } from '../auth/auth.guard.js';
import { Endpoint } from '../webhooks/endpoint.entity.js';
import { GenerationQueue } from '../generation/generation.queue.js';
import { Delivery } from '../webhooks/delivery.entity.js';
import { WebhookQueue } from '../webhooks/webhook.queue.js';

/** Finished deliveries counted by minute (epoch minute) and status, as the overview's GROUP BY answers them. */
export interface MinuteCount {
  minute: number;
  status: string;
  n: number;
}

/** The last `minutes` minutes (oldest first), each with its succeeded and failed count. */
export function perMinute(counts: readonly MinuteCount[], now: Date, minutes = 60) {
  const start = Math.floor(now.getTime() / 60_000) - minutes + 1;
  const buckets = Array.from({ length: minutes }, (_, i) => ({
    minute: new Date((start + i) * 60_000).toISOString(),
    succeeded: 0,
    failed: 0,
  }));
  for (const c of counts) {
    const i = c.minute - start;
    if (i < 0 || i >= minutes) continue;
    if (c.status === 'succeeded') buckets[i].succeeded += c.n;
    else if (c.status === 'failed') buckets[i].failed += c.n;
  }
  return buckets;
}

/** The dashboard's overview: delivery rate and success, failing endpoints, queue depth. */
@ApiTags('dashboard')
@Controller('v1/overview')
export class OverviewController {
  private readonly sql: Sql;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly generation: GenerationQueue,
    private readonly webhooks: WebhookQueue,
  ) {
    this.sql = new Sql(db);
  }

  @Get()
  @ApiOperation({
    operationId: 'getOverview',
    summary: 'Delivery rate and success, failing endpoints and queue depth (the dashboard’s overview)',
  })
  async overview(@TenantId() tenantId: string) {
    const now = new Date();
    const hourAgo = new Date(now.getTime() - 3_600_000);
    // Counted by the database: a busy hour is hundreds of thousands of rows, of which the page needs 120 numbers.
    const rows = await this.db.query<Array<{ minute: number | string; status: string; n: number | string }>>(
      `SELECT completed_at / 60000 AS minute, status, COUNT(*) AS n FROM deliveries
        WHERE tenant_id = ${this.sql.params(1)} AND status IN ('succeeded', 'failed') AND completed_at >= ${this.sql.params(1, 2)}
        GROUP BY completed_at / 60000, status`,
      [tenantId, hourAgo.getTime()],
    );
    const counts = rows.map((r) => ({ minute: Number(r.minute), status: r.status, n: Number(r.n) }));
    const total = (status: string) => counts.filter((c) => c.status === status).reduce((sum, c) => sum + c.n, 0);
    const succeeded = total('succeeded');
    const failed = total('failed');
    const failing = await this.db.getRepository(Endpoint).find({
      where: [
        { tenantId, status: 'disabled' },
        { tenantId, failingSince: Not(IsNull()) },
      ],
    });
    const [generation, webhooks, pending] = await Promise.all([
      this.generation.counts().catch(() => null),
      this.webhooks.counts().catch(() => null),
      this.db.getRepository(Delivery).countBy({ tenantId, status: 'pending' }),
    ]);
    return {
      window_minutes: 60,
      deliveries_per_minute: perMinute(counts, now),
      success_rate: succeeded + failed ? succeeded / (succeeded + failed) : null,
      deliveries_last_hour: { succeeded, failed },
      pending_deliveries: pending,
      failing_endpoints: failing.map((e) => ({
        id: e.id,
        url: e.url,
        status: e.status,
        disabled_reason: e.disabledReason,
        failing_since: e.failingSince?.toISOString() ?? null,
      })),
      queues: { generation, webhooks },
    };
  }
}
