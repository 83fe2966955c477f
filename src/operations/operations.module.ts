import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { GenerationModule } from '../generation/generation.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { HealthController } from './health.controller.js';
import { MetricsController } from './metrics.controller.js';
import { RetentionService } from './retention.service.js';

/** Running Herald: /health and /metrics where HTTP is served, the hourly retention purge where jobs are processed. */
@Module({})
export class OperationsModule {
  static register({ http, worker }: { http: boolean; worker: boolean }): DynamicModule {
    return {
      module: OperationsModule,
      imports: [TerminusModule, ObservabilityModule, GenerationModule, WebhooksModule],
      controllers: http ? [HealthController, MetricsController] : [],
      providers: worker ? [RetentionService] : [],
    };
  }
}
