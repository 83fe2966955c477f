import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Header, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard.js';
import { GenerationQueue } from '../generation/generation.queue.js';
import { Delivery } from '../webhooks/delivery.entity.js';
import { WebhookQueue } from '../webhooks/webhook.queue.js';
import { Metrics } from '../observability/metrics.js';

/** Prometheus text format. Public like /health: it holds counts, no tenant data. */
@Public()
@ApiTags('operations')
@Controller('metrics')
export class MetricsController implements OnModuleInit {
  constructor(
    private readonly metrics: Metrics,
    @InjectDataSource() private readonly db: DataSource,
    private readonly generation: GenerationQueue,
    private readonly webhooks: WebhookQueue,
  ) {}

  onModuleInit(): void {
    this.metrics.gauge('herald_queue_jobs', 'Jobs in each BullMQ queue, by state', ['queue', 'state'], async (g) => {
      for (const [name, queue] of [
        ['generation', this.generation],
        ['webhooks', this.webhooks],
      ] as const) {
        const counts = await queue.counts();
        for (const [state, n] of Object.entries(counts)) g.set({ queue: name, state }, n);
      }
    });
    this.metrics.gauge(
      'herald_outbox_lag_seconds',
      'Age of the oldest due delivery not yet sent (0 when none)',
      [],
      async (g) => {
        const oldest = await this.db.getRepository(Delivery).findOne({
          where: { status: 'pending' },
          order: { nextAttemptAt: 'ASC' },
          select: { id: true, nextAttemptAt: true },
        });
        g.set(oldest ? Math.max(0, (Date.now() - oldest.nextAttemptAt.getTime()) / 1000) : 0);
      },
    );
    this.metrics.gauge('herald_outbox_pending', 'Deliveries waiting to be sent', [], async (g) => {
      g.set(await this.db.getRepository(Delivery).countBy({ status: 'pending' }));
    });
  }

  @Get()
  @ApiOperation({ operationId: 'getMetrics', summary: 'Prometheus metrics (text format)' })
  @ApiProduces('text/plain')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
