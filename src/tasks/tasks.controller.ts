import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.js';
import { Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { TenantId } from '../auth/auth.guard.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { TaskWatcher } from './task-watcher.js';
import { ListTasksQuery, PollTaskQuery } from './dto/list-tasks.query.js';
import { TaskPresenter } from './task-presenter.js';
import { TasksService } from './tasks.service.js';

/** Herald's own task routes: every kind, with filters and cursor pagination. */
@ApiTags('tasks')
@Controller('v1/tasks')
export class TasksController {
  constructor(
    private readonly tasks: TasksService,
    private readonly presenter: TaskPresenter,
    private readonly watcher: TaskWatcher,
  ) {}

  @Get()
  @ApiOperation({
    operationId: 'listTasks',
    summary: 'List tasks of every kind, newest first, with filters and a cursor',
  })
  @ApiResponse({ status: 200, description: '{data, next_cursor}' })
  @ApiProblems(ErrorCode.ValidationFailed)
  async list(@TenantId() tenantId: string, @Query() query: ListTasksQuery) {
    const page = await this.tasks.list(tenantId, query);
    return { data: this.presenter.many(page.data), next_cursor: page.next_cursor };
  }

  @Get(':id')
  @ApiOperation({ operationId: 'getTask', summary: 'Get a task of any kind with its result' })
  @ApiResponse({ status: 200, description: 'The task; Retry-After while it has not ended' })
  @ApiProblems(ErrorCode.TaskNotFound)
  async get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.presenter.one(await this.tasks.get(tenantId, id), res);
  }

  /** Conduit's generic cancel (its SDK's `TasksService.cancelTask`): as DELETE on the task's own route. */
  @Post(':id/cancel')
  @HttpCode(204)
  @ApiOperation({ operationId: 'cancelTask', summary: 'Cancel a task of any kind (Conduit route)' })
  @ApiResponse({ status: 204, description: 'Cancelled; its cancelled webhook follows' })
  @ApiProblems(ErrorCode.TaskNotFound, ErrorCode.TaskNotCancellable)
  async cancel(@TenantId() tenantId: string, @Param('id') id: string): Promise<void> {
    await this.tasks.cancel(tenantId, id);
  }

  /** Conduit's long poll: the task once it is terminal, or 408 `poll_timeout` after `timeout` seconds. */
  @Get(':id/poll')
  @ApiOperation({
    operationId: 'pollTask',
    summary: 'Wait for a task to end (Conduit route)',
    description: '?timeout=1–600 s (default 300); 408 poll_timeout if it does not end by then.',
  })
  @ApiResponse({ status: 200, description: 'The task, ended' })
  @ApiProblems(ErrorCode.TaskNotFound, ErrorCode.ValidationFailed, ErrorCode.PollTimeout, ErrorCode.ServiceUnavailable)
  async poll(
    @TenantId() tenantId: string,
    @Param('id') id: string,
    @Query() query: PollTaskQuery,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    await this.tasks.get(tenantId, id);
    const seconds = Math.min(Math.max(query.timeout ?? 300, 1), 600);
    if (!(await this.watcher.untilTerminal(id, seconds * 1_000))) {
      if (this.watcher.closing)
        throw new DomainException(ErrorCode.ServiceUnavailable, 'Herald is shutting down; poll again.', undefined, {
          'Retry-After': '1',
        });
      throw new DomainException(
        ErrorCode.PollTimeout,
        `Task ${id} did not finish within ${seconds} s; poll again or wait for its webhook.`,
      );
    }
    return this.presenter.one(await this.tasks.get(tenantId, id), res);
  }
}
