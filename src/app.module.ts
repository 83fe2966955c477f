import { BullModule } from '@nestjs/bullmq';
import type { ConnectionOptions } from 'bullmq';
import { DynamicModule, Module, OnApplicationShutdown } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule, HttpAuthModule } from './auth/auth.module.js';
import { ProblemFilter } from './common/problem.filter.js';
import { RequestValidationPipe } from './common/validation.js';
import { ConfigModule } from './config/config.module.js';
import type { HeraldConfig } from './config/config.js';
import { CryptoModule } from './crypto/crypto.module.js';
import { DatabaseModule } from './database/database.module.js';
import { OverviewController } from './dashboard/overview.controller.js';
import { EndpointsModule } from './endpoints/endpoints.module.js';
import { ArtifactsController } from './generation/artifacts.controller.js';
import { GenerationModule } from './generation/generation.module.js';
import { HealthController } from './health/health.controller.js';
import { IdempotencyModule } from './idempotency/idempotency.module.js';
import { MetricsController } from './observability/metrics.controller.js';
import { ObservabilityModule } from './observability/observability.module.js';
import { RedisConnection, RedisModule } from './redis/redis.module.js';
import { StreamsModule } from './streams/streams.module.js';
import { TasksApiModule } from './tasks/tasks-api.module.js';
import { TasksCoreModule } from './tasks/tasks-core.module.js';
import { DeliveriesController } from './webhooks/deliveries.controller.js';
import { WebhooksModule } from './webhooks/webhooks.module.js';
import { WorkersModule } from './workers/workers.module.js';

/** HTTP surface: routes, auth guard, the one exception filter and the validation pipe. */
@Module({
  imports: [AuthModule, HttpAuthModule, IdempotencyModule, TerminusModule, TasksCoreModule, TasksApiModule, EndpointsModule, StreamsModule],
  controllers: [HealthController, ArtifactsController, DeliveriesController, MetricsController, OverviewController],
  providers: [
    { provide: APP_FILTER, useClass: ProblemFilter },
    { provide: APP_PIPE, useClass: RequestValidationPipe },
  ],
})
class HttpModule {}

/** One binary, composed by role: `api` serves HTTP, `worker` processes jobs, `all` does both. */
@Module({})
export class AppModule implements OnApplicationShutdown {
  constructor(private readonly redis: RedisConnection) {}

  // The root module's hooks run after those of every module it imports: BullMQ's queues and workers are closed.
  onApplicationShutdown(): void {
    this.redis.closeBullmq();
  }

  static forRoot(config: HeraldConfig): DynamicModule {
    const serveHttp = config.role !== 'worker';
    const processJobs = config.role !== 'api';
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        ObservabilityModule,
        CryptoModule,
        DatabaseModule,
        BullModule.forRootAsync({ inject: [RedisConnection], useFactory: (redis: RedisConnection) => ({ connection: redis.bullmq as ConnectionOptions, prefix: config.queuePrefix }) }),
        RedisModule,
        AuthModule,
        GenerationModule.register({ worker: processJobs }),
        WebhooksModule.register({ worker: processJobs }),
        WorkersModule.register({ http: serveHttp, sweeper: processJobs }),
        ...(serveHttp ? [HttpModule] : []),
      ],
    };
  }
}
