import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Headers, Inject, Query, Req, Res } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DataSource } from 'typeorm';
import type { Principal } from '../auth/api-keys.service.js';
import { TenantId } from '../auth/auth.guard.js';
import { ApiProblems } from '../common/api-problems.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { validationFailed } from '../common/validation.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { formatCursor, parseCursor } from '../tasks/event-cursor.js';
import { eventView } from '../tasks/task-events.controller.js';
import { parseEventsQuery } from './stream-filter.js';
import { cursorBeyondLast, tenantEventsAfter, TenantStreams, type CloseReason } from './tenant-streams.js';

const CLOSE_COMMENTS: Record<CloseReason, string> = {
  slow: 'dropped: the client did not read fast enough (STREAM_BUFFER_LIMIT_BYTES)',
  revoked: 'closed: the API key was revoked',
  shutdown: 'closed: Herald is shutting down; reconnect with Last-Event-ID',
};

/** The whole tenant's events: paged catch-up, and a Server-Sent Events stream that stays open. */
@ApiTags('events')
@Controller('v1/events')
export class EventsController {
  constructor(
    private readonly streams: TenantStreams,
    @InjectDataSource() private readonly db: DataSource,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  @Get()
  @ApiOperation({
    operationId: 'listEvents',
    summary: "The tenant's events in cursor order: ?after=CURSOR&types=&task_ids=&limit=1–1000 → {data, next_cursor}",
  })
  @ApiResponse({ status: 200, description: '{data, next_cursor}; next_cursor is null on the last page' })
  @ApiProblems(ErrorCode.ValidationFailed)
  async list(@TenantId() tenantId: string, @Query() raw: Record<string, unknown>) {
    const { query, errors } = parseEventsQuery(raw);
    if (!query) throw validationFailed(errors);
    const beyond = await cursorBeyondLast(this.db, tenantId, query.after, 'after');
    if (beyond) throw validationFailed([beyond]);
    const rows = await tenantEventsAfter(this.db, tenantId, query.after ?? 0, query.filter, query.limit + 1);
    const page = rows.slice(0, query.limit);
    return {
      data: page.map(eventView),
      next_cursor: rows.length > query.limit ? formatCursor(page[page.length - 1].cursor) : null,
    };
  }

  @Get('stream')
  @ApiOperation({
    operationId: 'streamEvents',
    summary: 'SSE of the tenant’s events (?types=&task_ids=&after=, or Last-Event-ID): id is the cursor; stays open',
  })
  @ApiResponse({ status: 200, description: 'text/event-stream' })
  @ApiProblems(ErrorCode.ValidationFailed, ErrorCode.StreamLimitReached)
  async stream(
    @TenantId() tenantId: string,
    @Query() raw: Record<string, unknown>,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Req() req: FastifyRequest & { principal?: Principal },
    @Res() reply: FastifyReply,
  ): Promise<void> {
    const { query, errors } = parseEventsQuery(raw);
    if (!query) throw validationFailed(errors);
    // A browser's EventSource reconnects with the last id it saw, and the URL it first used: the header wins.
    const resumed = lastEventId !== undefined && lastEventId !== '' ? parseCursor(lastEventId) : undefined;
    if (lastEventId && resumed === undefined)
      throw validationFailed([{ field: 'Last-Event-ID', message: 'must be a cursor sent by this stream' }]);
    const from = resumed ?? query.after;
    const beyond = await cursorBeyondLast(this.db, tenantId, from, resumed !== undefined ? 'Last-Event-ID' : 'after');
    if (beyond) throw validationFailed([beyond]);
    const keyId = req.principal!.keyId;
    const res = reply.raw;
    let heartbeat: NodeJS.Timeout | undefined; // eslint-disable-line prefer-const -- assigned after the stream opens, read by its close handler
    const connection = await this.streams.open(tenantId, keyId, 'sse', {
      send: (batch) => void (res.writableEnded || res.write(batch.sse)),
      buffered: () => res.writableLength,
      close: (reason) => {
        clearInterval(heartbeat);
        if (res.writableEnded) return;
        res.write(`: ${CLOSE_COMMENTS[reason]}\n\n`);
        // The connection ends with the stream (not kept alive for another request): the client reconnects anew.
        const socket = req.raw.socket;
        res.end(() => socket.end());
        // A client that does not read would hold the socket (and its buffer) until it does.
        setTimeout(() => res.destroy(), 1_000).unref();
      },
    });
    if (!connection) {
      throw new DomainException(
        ErrorCode.StreamLimitReached,
        `This API key already has ${this.config.streams.maxConnectionsPerKey} open streams (STREAM_MAX_CONNECTIONS_PER_KEY, across all API processes); close one first.`,
        undefined,
        { 'Retry-After': '5' },
      );
    }
    // Written to the socket as events come: Fastify lets go of this response.
    reply.hijack();
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    heartbeat = setInterval(
      () => res.writableEnded || res.write(`: heartbeat ${new Date().toISOString()}\n\n`),
      this.config.sseHeartbeatMs,
    );
    const gone = () => {
      clearInterval(heartbeat);
      connection.ended();
    };
    req.raw.socket.on('close', gone);
    // The client may have left while the stream's slot was being taken.
    if (req.raw.socket.destroyed) return gone();
    try {
      await this.streams.subscribe(connection, query.filter, from);
    } catch {
      // The response is hijacked: no problem+json now, the client reconnects with its last id.
      clearInterval(heartbeat);
      connection.ended();
      res.destroy();
      return;
    }
    // Sent once subscribed: a client that sees the stream open knows every later event will come through it.
    if (!res.writableEnded) res.write(`retry: 2000\n\n`);
  }
}
