import { ApiTags } from '@nestjs/swagger';
import { Controller, Get, Param, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { TenantId } from '../auth/auth.guard.js';
import { ListTasksQuery } from './dto/list-tasks.query.js';
import { TaskPresenter } from './task-presenter.js';
import { TasksService } from './tasks.service.js';

/** Herald's own task routes: every kind, with filters and cursor pagination. */
@ApiTags('tasks')
@Controller('v1/tasks')
export class TasksController {
  constructor(
    private readonly tasks: TasksService,
    private readonly presenter: TaskPresenter,
  ) {}

  @Get()
  async list(@TenantId() tenantId: string, @Query() query: ListTasksQuery) {
    const page = await this.tasks.list(tenantId, query);
    return { data: this.presenter.many(page.data), next_cursor: page.next_cursor };
  }

  @Get(':id')
  async get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: Response) {
    return this.presenter.one(await this.tasks.get(tenantId, id), res);
  }
}
