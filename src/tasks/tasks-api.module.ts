import { DynamicModule, Module, Type } from '@nestjs/common';
import { IdempotencyModule } from '../idempotency/idempotency.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { ImagesController, VideosController } from './generation.controllers.js';
import { TaskDeliveriesController } from './task-deliveries.controller.js';
import { TaskEventsController } from './task-events.controller.js';
import { TaskPresenter } from './task-presenter.js';
import { TaskWatcher } from './task-watcher.js';
import { TasksController } from './tasks.controller.js';
import { TasksCoreModule } from './tasks-core.module.js';
import { TasksService } from './tasks.service.js';

/** The task routes (Conduit's and Herald's own). */
@Module({})
export class TasksApiModule {
  /** `engine`: the module that provides GenerationEngine (GenerationModule), passed in by the composition root. */
  static register(engine: Type): DynamicModule {
    return {
      module: TasksApiModule,
      imports: [TasksCoreModule, WebhooksModule, IdempotencyModule, ObservabilityModule, engine],
      controllers: [
        VideosController,
        ImagesController,
        TasksController,
        TaskEventsController,
        TaskDeliveriesController,
      ],
      providers: [TasksService, TaskPresenter, TaskWatcher],
      exports: [TasksService],
    };
  }
}
