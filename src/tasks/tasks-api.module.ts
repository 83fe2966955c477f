import { Module } from '@nestjs/common';
import { ImagesController, VideosController } from './generation.controllers.js';
import { TasksCoreModule } from './tasks-core.module.js';
import { TaskDeliveriesController } from './task-deliveries.controller.js';
import { TasksController } from './tasks.controller.js';
import { TaskEventsController } from './task-events.controller.js';
import { TaskWatcher } from './task-watcher.js';
import { TasksService } from './tasks.service.js';
import { TaskPresenter } from './task-presenter.js';

@Module({
  imports: [TasksCoreModule],
  controllers: [VideosController, ImagesController, TasksController, TaskEventsController, TaskDeliveriesController],
  providers: [TasksService, TaskPresenter, TaskWatcher],
  exports: [TasksService],
})
export class TasksApiModule {}
