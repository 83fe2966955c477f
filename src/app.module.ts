import { BullModule } from '@nestjs/bullmq';
import type { ConnectionOptions } from 'bullmq';
import { DynamicModule, Module, OnApplicationShutdown } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { AuthModule, HttpAuthModule } from './auth/auth.module.js';
import { ProblemFilter } from './common/problem.filter.js';
import { RequestValidationPipe } from './common/validation.js';
import { ConfigModule } from './config/config.module.js';
import type { HeraldConfig } from './config/config.js';
import { CryptoModule } from './crypto/crypto.module.js';
import { DashboardModule } from './dashboard/dashboard.module.js';
import { DatabaseModule } from './database/database.module.js';
import { EndpointsModule } from './endpoints/endpoints.module.js';
import { ENTITIES } from './entities.js';
import { ArtifactsModule, GenerationModule, GenerationWorkersModule } from './generation/generation.module.js';
import { OperationsModule } from './operations/operations.module.js';
import { RedisConnection, RedisModule } from './redis/redis.module.js';
import { StreamsModule } from './streams/streams.module.js';
import { TasksApiModule } from './tasks/tasks-api.module.js';
import { DeliveriesModule, DeliveryWorkersModule, WebhooksModule } from './webhooks/webhooks.module.js';
import { WorkersModule } from './workers/workers.module.js';

/** HTTP surface: every domain's routes, the auth guard, the one exception filter and the validation pipe. */
@Module({
  imports: [
    HttpAuthModule,
    TasksApiModule.register(GenerationModule),
    EndpointsModule,
    DeliveriesModule,
    ArtifactsModule,
    DashboardModule,
    StreamsModule,
  ],
  providers: [
    { provide: APP_FILTER, useClass: ProblemFilter },
    { provide: APP_PIPE, useClass: RequestValidationPipe },
  ],
})
class HttpModule {}

/**
 * One binary, composed by role: `api` serves HTTP, `worker` processes jobs, `all` does both. The composition root:
 * infrastructure (config, database, Redis, crypto) is global; every domain module imports what it uses.
 */
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
        CryptoModule,
        DatabaseModule.forRoot(ENTITIES),
        BullModule.forRootAsync({
          inject: [RedisConnection],
          useFactory: (redis: RedisConnection) => ({
            connection: redis.bullmq as ConnectionOptions,
            prefix: config.queuePrefix,
          }),
        }),
        RedisModule,
        AuthModule,
        GenerationModule,
        WebhooksModule,
        ...(processJobs ? [GenerationWorkersModule, DeliveryWorkersModule] : []),
        WorkersModule.register({ http: serveHttp, sweeper: processJobs }),
        OperationsModule.register({ http: serveHttp, worker: processJobs }),
        ...(serveHttp ? [HttpModule] : []),
      ],
    };
  }
}
