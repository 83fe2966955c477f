import { ApiBody, ApiExcludeEndpoint, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiIdempotent, ApiProblems, IDEMPOTENCY_PROBLEMS } from '../common/api-problems.js';
import { ErrorCode } from '../common/errors.js';
import { taskWebhooks } from '../common/api-callbacks.js';
import {
  applyDecorators,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  Param,
  Post,
  Req,
  Res,
  type Type,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { preferredWait, Reply } from '../common/reply.js';
import { inRequestSpan } from '../observability/tracing.js';
import { TaskWatcher } from './task-watcher.js';
import { IdempotentReplies } from '../idempotency/idempotent-replies.js';
import { TenantId } from '../auth/auth.guard.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { CreateGenerationDto } from './dto/create-generation.dto.js';
import { RetryTaskDto } from './dto/list-tasks.query.js';
import { TaskPresenter } from './task-presenter.js';
import { createdView } from './task-view.js';
import type { TaskKind } from './task.entity.js';
import { TasksService } from './tasks.service.js';

/** The create route's request and answer, quoted from seeds/001 (Conduit). */
const CREATE_EXAMPLES = {
  createVideo: {
    model: 'minimax-video',
    prompt: 'A serene mountain landscape with clouds',
    duration: 6,
    size: '1280x720',
    webhook_url: 'https://your-app.com/webhooks/video-complete',
    webhook_headers: { Authorization: 'Bearer your-webhook-secret', 'X-Custom-Header': 'custom-value' },
  },
  created: {
    task_id: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
    status: 'pending',
    created_at: '2024-01-20T15:29:00.000Z',
    estimated_completion_time: '2024-01-20T15:29:10.000Z',
    estimated_time_to_completion: 10,
    check_status_url: 'http://localhost:3000/v1/videos/generations/tasks/01a2067a-85e7-772a-b5bb-a39c8118ce75',
  },
};

/** OpenAPI for the routes of both kinds: the seeds' request, and each answer it can get. */
type Kind = 'Video' | 'Image';
const aTask = (kind: Kind) => (kind === 'Image' ? 'an image task' : 'a video task');
const CreateRouteDocs = (kind: Kind) =>
  applyDecorators(
    ApiOperation({ operationId: `create${kind}Task`, summary: `Start ${aTask(kind)}`, callbacks: taskWebhooks(kind) }),
    ApiBody({
      type: CreateGenerationDto,
      examples: { conduit: { summary: 'seeds/001 request', value: CREATE_EXAMPLES.createVideo } },
    }),
    ApiResponse({
      status: 202,
      description: 'Accepted; poll check_status_url or wait for webhooks',
      schema: { example: CREATE_EXAMPLES.created },
    }),
    ApiResponse({ status: 200, description: 'With Prefer: wait=N, the finished task when it ended within N seconds' }),
    ApiIdempotent(),
    ApiProblems(ErrorCode.ValidationFailed, ErrorCode.WebhookUrlBlocked, ...IDEMPOTENCY_PROBLEMS),
  );
const StatusRouteDocs = (kind: Kind, description?: string) =>
  applyDecorators(
    ApiOperation({ operationId: `get${kind}Task`, summary: `Get ${aTask(kind)} with its result`, description }),
    ApiResponse({ status: 200, description: 'The task; Retry-After while it has not ended' }),
    ApiProblems(ErrorCode.TaskNotFound),
  );
const CancelRouteDocs = (kind: Kind) =>
  applyDecorators(
    ApiOperation({ operationId: `cancel${kind}Task`, summary: `Cancel ${aTask(kind)}` }),
    ApiResponse({ status: 204, description: 'Cancelled; its cancelled webhook follows' }),
    ApiProblems(ErrorCode.TaskNotFound, ErrorCode.TaskNotCancellable),
  );
const RetryRouteDocs = (kind: Kind) =>
  applyDecorators(
    ApiOperation({ operationId: `retry${kind}Task`, summary: `Retry ${aTask(kind)} that failed or timed out` }),
    ApiResponse({ status: 202, description: 'The task, queued for a new attempt' }),
    ApiIdempotent(),
    ApiProblems(ErrorCode.TaskNotFound, ErrorCode.TaskNotRetryable, ...IDEMPOTENCY_PROBLEMS),
  );

/** Where each kind's routes live, and how its status route is spelt (Conduit's, seeds/001). */
const ROUTES = {
  video: {
    path: 'v1/videos/generations',
    tag: 'videos',
    name: 'Video',
    status: 'tasks/:id',
    statusNote: undefined,
    alias: undefined,
  },
  image: {
    path: 'v1/images/generations',
    tag: 'images',
    name: 'Image',
    status: ':id/status',
    statusNote: 'Also at GET /v1/images/generations/tasks/{id}, as for videos.',
    alias: 'tasks/:id',
  },
} as const satisfies Record<
  TaskKind,
  { path: string; tag: string; name: Kind; status: string; statusNote?: string; alias?: string }
>;

// Images answer their status under the videos' path too; left out of the document, where it would be ambiguous.
const AliasRoute = (alias: string | undefined): MethodDecorator =>
  alias ? applyDecorators(Get(alias), ApiExcludeEndpoint()) : () => undefined;

/** The Conduit routes of one kind of task: one controller class per kind, made from the same code. */
function generationController(kind: TaskKind): Type {
  const routes = ROUTES[kind];

  @ApiTags(routes.tag)
  @Controller(routes.path)
  class GenerationController {
    constructor(
      readonly tasks: TasksService,
      readonly presenter: TaskPresenter,
      readonly watcher: TaskWatcher,
      readonly idempotent: IdempotentReplies,
      @Inject(CONFIG) readonly config: HeraldConfig,
    ) {}

    /** 202 at once; with `Prefer: wait=N`, 200 with the finished task if it ends within N s, else 202 after N s. */
    @Post('async')
    @CreateRouteDocs(routes.name)
    create(
      @TenantId() tenantId: string,
      @Body() body: CreateGenerationDto,
      @Req() req: FastifyRequest,
      @Res() res: FastifyReply,
    ): Promise<void> {
      // The create request's span is the root of the task's trace (or joins the caller's, given a traceparent).
      const traceparent = req.headers.traceparent;
      const route = `POST ${req.routeOptions?.url ?? req.url}`;
      return inRequestSpan(
        route,
        typeof traceparent === 'string' ? traceparent : undefined,
        { 'http.request.method': 'POST', 'http.route': req.routeOptions?.url ?? '', 'herald.task.kind': kind },
        (taskTrace) => this.respondToCreate(tenantId, body, req, res, taskTrace),
      );
    }

    @Get(routes.status)
    @StatusRouteDocs(routes.name, routes.statusNote)
    async get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
      return this.presenter.one(await this.tasks.get(tenantId, id, kind), res);
    }

    @AliasRoute(routes.alias)
    getAlias(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
      return this.get(tenantId, id, res);
    }

    @Delete(':id')
    @CancelRouteDocs(routes.name)
    @HttpCode(204)
    async cancel(@TenantId() tenantId: string, @Param('id') id: string): Promise<void> {
      await this.tasks.cancel(tenantId, id, kind);
    }

    @Post('tasks/:id/retry')
    @RetryRouteDocs(routes.name)
    retry(
      @TenantId() tenantId: string,
      @Param('id') id: string,
      @Body() body: RetryTaskDto,
      @Req() req: FastifyRequest,
      @Res() res: FastifyReply,
    ): Promise<void> {
      return this.idempotent.respond(req, res, tenantId, async () => ({
        status: 202,
        body: await this.presenter.view(await this.tasks.retry(tenantId, id, kind, body)),
      }));
    }

    private respondToCreate(
      tenantId: string,
      body: CreateGenerationDto,
      req: FastifyRequest,
      res: FastifyReply,
      taskTrace: string | undefined,
    ): Promise<void> {
      return this.idempotent.respond(req, res, tenantId, async (): Promise<Reply> => {
        const task = await this.tasks.create(tenantId, kind, body, taskTrace);
        const wait = preferredWait(req.headers.prefer?.toString());
        if (!wait) return { status: 202, body: createdView(task, this.config.publicBaseUrl) };
        const headers = { 'Preference-Applied': `wait=${wait}` };
        const finished = await this.watcher.untilTerminal(task.id, wait * 1_000);
        const now = await this.tasks.get(tenantId, task.id);
        if (!finished) return { status: 202, body: createdView(now, this.config.publicBaseUrl), headers };
        return {
          status: 200,
          body: { ...createdView(now, this.config.publicBaseUrl), ...(await this.presenter.view(now)) },
          headers,
        };
      });
    }
  }

  // Nest and the logs name a controller by its class name.
  Object.defineProperty(GenerationController, 'name', { value: `${routes.name}sController` });
  return GenerationController;
}

export const VideosController = generationController('video');
export const ImagesController = generationController('image');
