import { ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.js';
import { ErrorCode } from '../common/errors.js';
import { Controller, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DataSource } from 'typeorm';
import { TenantId } from '../auth/auth.guard.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { eventsAfter, TaskWatcher } from './task-watcher.js';
import { isTerminalEvent } from '../webhooks/payloads.js';
import { formatCursor } from './event-cursor.js';
import type { TaskEvent } from './task-event.entity.js';
import { TasksService } from './tasks.service.js';

/** An event as every route shows it: `sequence` counts within its task, `cursor` within its tenant (as a string). */
export function eventView(e: TaskEvent) {
  return {
    id: e.id,
    task_id: e.taskId,
    sequence: e.sequence,
    cursor: formatCursor(e.cursor),
    type: e.type,
    created_at: e.createdAt.toISOString(),
    data: e.data,
  };
}

/** One Server-Sent Event: `id` is the sequence (for Last-Event-ID), `event` the type. */
export function sseFrame(e: TaskEvent): string {
  return `id: ${e.sequence}\nevent: ${e.type}\ndata: ${JSON.stringify(eventView(e))}\n\n`;
}

function sequenceFrom(value: unknown): number {
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

@ApiTags('tasks')
@Controller('v1/tasks/:id/events')
export class TaskEventsController {
  constructor(
    private readonly tasks: TasksService,
    private readonly watcher: TaskWatcher,
    @InjectDataSource() private readonly db: DataSource,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /** The task's events in order; `?after=<sequence>` for the ones after a known point. */
  @Get()
  @ApiOperation({ operationId: 'listTaskEvents', summary: 'List a task’s events in order' })
  @ApiResponse({ status: 200, description: '{data}: the events after `after` (a sequence), up to 1,000' })
  @ApiProblems(ErrorCode.TaskNotFound)
  async list(@TenantId() tenantId: string, @Param('id') id: string, @Query('after') after?: string) {
    await this.tasks.get(tenantId, id);
    return { data: (await eventsAfter(this.db, id, sequenceFrom(after), 1_000)).map(eventView) };
  }

  /** Server-Sent Events: replays from Last-Event-ID, then streams live; heartbeats; closes after the terminal event. */
  @Get('stream')
  @ApiOperation({ operationId: 'streamTaskEvents', summary: 'Stream a task’s events (Server-Sent Events)' })
  @ApiProduces('text/event-stream')
  @ApiResponse({
    status: 200,
    description:
      'text/event-stream from Last-Event-ID (or ?last_event_id), live after; closes after the terminal event',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  })
  @ApiProblems(ErrorCode.TaskNotFound)
  async stream(
    @TenantId() tenantId: string,
    @Param('id') id: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Query('last_event_id') lastEventQuery: string | undefined,
    @Req() req: FastifyRequest,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    await this.tasks.get(tenantId, id);
    // A stream written to the socket as events come: Fastify lets go of this response.
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: 2000\n\n`);
    const heartbeat = setInterval(
      () => res.write(`: heartbeat ${new Date().toISOString()}\n\n`),
      this.config.sseHeartbeatMs,
    );
    const close = () => {
      clearInterval(heartbeat);
      stop();
      res.end();
    };
    const stop = this.watcher.follow(id, sequenceFrom(lastEventId ?? lastEventQuery), (events) => {
      for (const e of events) res.write(sseFrame(e));
      if (events.some((e) => isTerminalEvent(e.type))) {
        // Let the last frame flush before closing.
        setImmediate(close);
        return 'stop';
      }
    });
    req.raw.on('close', () => {
      clearInterval(heartbeat);
      stop();
    });
  }
}
