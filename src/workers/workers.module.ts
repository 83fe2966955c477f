import { DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { GenerationModule } from '../generation/generation.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { TasksCoreModule } from '../tasks/tasks-core.module.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { LeaseSweeper } from './lease-sweeper.js';
import { WorkQueue } from './work-queue.js';
import { WorkerLeasesService } from './worker-leases.service.js';
import { WorkerProtocolController } from './worker-protocol.controller.js';
import { WorkerRegistry } from './worker-registry.js';
import { WorkersController } from './workers.controller.js';

/**
 * External workers: the HTTP protocol and the read-only views where HTTP is served, the lease sweeper where jobs
 * are processed (as the generation sweeper).
 */
@Module({})
export class WorkersModule {
  static register({ http, sweeper }: { http: boolean; sweeper: boolean }): DynamicModule {
    return {
      module: WorkersModule,
      imports: [TasksCoreModule, AuthModule, GenerationModule, WebhooksModule, ObservabilityModule],
      controllers: http ? [WorkerProtocolController, WorkersController] : [],
      providers: [
        WorkQueue,
        WorkerRegistry,
        ...(http ? [WorkerLeasesService] : []),
        ...(sweeper ? [LeaseSweeper] : []),
      ],
    };
  }
}
