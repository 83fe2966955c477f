import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { DeliveryLog } from '../webhooks/delivery-log.js';
import { lastDeliveryView } from '../webhooks/delivery-view.js';
import { pollAfterSeconds, taskView, TaskView } from './task-view.js';
import type { Task } from './task.entity.js';

/** Renders one task for HTTP: the task object, its last webhook delivery, and Retry-After while it runs. */
@Injectable()
export class TaskPresenter {
  constructor(
    private readonly deliveries: DeliveryLog,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  async one(task: Task, res: FastifyReply): Promise<TaskView> {
    const after = pollAfterSeconds(task);
    if (after !== undefined) void res.header('Retry-After', String(after));
    return this.view(task);
  }

  async view(task: Task): Promise<TaskView> {
    const last = task.webhookUrl ? lastDeliveryView(await this.deliveries.lastForTask(task.id)) : null;
    return taskView(task, this.config.publicBaseUrl, last);
  }

  many(tasks: Task[]): TaskView[] {
    return tasks.map((t) => taskView(t, this.config.publicBaseUrl));
  }
}
