import { Controller, Get } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { DataSource, In, MoreThanOrEqual, Not, IsNull } from 'typeorm';
import { TenantId } from '../auth/auth.guard.js';
import { Endpoint } from '../webhooks/endpoint.entity.js';
import { GenerationQueue } from '../generation/generation.queue.js';
import { Delivery } from '../webhooks/delivery.entity.js';
import { WebhookQueue } from '../webhooks/webhook.queue.js';

/** Buckets finished deliveries by minute for the last `minutes` minutes (oldest first). */
export function perMinute(rows: Array<{ completedAt: Date | null; status: string }>, now: Date, minutes = 60) {
  const start = Math.floor(now.getTime() / 60_000) - minutes + 1;
  const buckets = Array.from({ length: minutes }, (_, i) => ({ minute: new Date((start + i) * 60_000).toISOString(), succeeded: 0, failed: 0 }));
  for (const r of rows) {
    if (!r.completedAt) continue;
    const i = Math.floor(r.completedAt.getTime() / 60_000) - start;
    if (i < 0 || i >= minutes) continue;
    if (r.status === 'succeeded') buckets[i].succeeded++;
    else if (r.status === 'failed') buckets[i].failed++;
  }
  return buckets;
}

/** The dashboard's overview: delivery rate and success, failing endpoints, queue depth. */
@ApiTags('dashboard')
@Controller('v1/overview')
export class OverviewController {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly generation: GenerationQueue,
    private readonly webhooks: WebhookQueue,
  ) {}

  @Get()
  @ApiOperation({ operationId: 'getOverview', summary: 'Delivery rate and success, failing endpoints and queue depth (the dashboard’s overview)' })
  async overview(@TenantId() tenantId: string) {
    const now = new Date();
    const hourAgo = new Date(now.getTime() - 3_600_000);
    const finished = await this.db.getRepository(Delivery).find({
      where: { tenantId, status: In(['succeeded', 'failed']), completedAt: MoreThanOrEqual(hourAgo) },
      select: { completedAt: true, status: true },
      take: 200_000,
    });
    const succeeded = finished.filter((d) => d.status === 'succeeded').length;
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
      deliveries_per_minute: perMinute(finished, now),
      success_rate: finished.length ? succeeded / finished.length : null,
      deliveries_last_hour: { succeeded, failed: finished.length - succeeded },
      pending_deliveries: pending,
      failing_endpoints: failing.map((e) => ({ id: e.id, url: e.url, status: e.status, disabled_reason: e.disabledReason, failing_since: e.failingSince?.toISOString() ?? null })),
      queues: { generation, webhooks },
    };
  }
}
