import { ApiBody, ApiExcludeEndpoint, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiIdempotent, ApiProblems, IDEMPOTENCY_PROBLEMS } from '../common/api-problems.js';
import { ErrorCode } from '../common/errors.js';
import { taskWebhooks } from '../common/api-callbacks.js';
import { applyDecorators, Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
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
    ApiBody({ type: CreateGenerationDto, examples: { conduit: { summary: 'seeds/001 request', value: CREATE_EXAMPLES.createVideo } } }),
    ApiResponse({ status: 202, description: 'Accepted; poll check_status_url or wait for webhooks', schema: { example: CREATE_EXAMPLES.created } }),
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

/** The Conduit routes shared by both kinds; the subclasses fix the kind and the paths. */
abstract class GenerationRoutes {
  protected abstract readonly kind: TaskKind;

  constructor(
    protected readonly tasks: TasksService,
    protected readonly presenter: TaskPresenter,
    protected readonly watcher: TaskWatcher,
    protected readonly idempotent: IdempotentReplies,
    @Inject(CONFIG) protected readonly config: HeraldConfig,
  ) {}

  /** 202 at once; with `Prefer: wait=N`, 200 with the finished task if it ends within N s, else 202 after N s. */
  protected createTask(tenantId: string, body: CreateGenerationDto, req: FastifyRequest, res: FastifyReply): Promise<void> {
    // The create request's span is the root of the task's trace (or joins the caller's, given a traceparent).
    const traceparent = req.headers.traceparent;
    const route = `POST ${req.routeOptions?.url ?? req.url}`;
    return inRequestSpan(route, typeof traceparent === 'string' ? traceparent : undefined, { 'http.request.method': 'POST', 'http.route': req.routeOptions?.url ?? '', 'herald.task.kind': this.kind }, (taskTrace) =>
      this.respondToCreate(tenantId, body, req, res, taskTrace),
    );
  }

  private respondToCreate(tenantId: string, body: CreateGenerationDto, req: FastifyRequest, res: FastifyReply, taskTrace: string | undefined): Promise<void> {
    return this.idempotent.respond(req, res, tenantId, async (): Promise<Reply> => {
      const task = await this.tasks.create(tenantId, this.kind, body, taskTrace);
      const wait = preferredWait(req.headers.prefer?.toString());
      if (!wait) return { status: 202, body: createdView(task, this.config.publicBaseUrl) };
      const headers = { 'Preference-Applied': `wait=${wait}` };
      const finished = await this.watcher.untilTerminal(task.id, wait * 1_000);
      const now = await this.tasks.get(tenantId, task.id);
      if (!finished) return { status: 202, body: createdView(now, this.config.publicBaseUrl), headers };
      return { status: 200, body: { ...createdView(now, this.config.publicBaseUrl), ...(await this.presenter.view(now)) }, headers };
    });
  }

  protected async status(tenantId: string, id: string, res: FastifyReply) {
    return this.presenter.one(await this.tasks.get(tenantId, id, this.kind), res);
  }

  protected async cancelTask(tenantId: string, id: string): Promise<void> {
    await this.tasks.cancel(tenantId, id, this.kind);
  }

  protected retryTask(tenantId: string, id: string, body: RetryTaskDto, req: FastifyRequest, res: FastifyReply): Promise<void> {
    return this.idempotent.respond(req, res, tenantId, async () => ({ status: 202, body: await this.presenter.view(await this.tasks.retry(tenantId, id, this.kind, body)) }));
  }
}

@ApiTags('videos')
@Controller('v1/videos/generations')
export class VideosController extends GenerationRoutes {
  protected readonly kind = 'video';

  @Post('async')
  @CreateRouteDocs('Video')
  create(@TenantId() tenantId: string, @Body() body: CreateGenerationDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.createTask(tenantId, body, req, res);
  }

  @Get('tasks/:id')
  @StatusRouteDocs('Video')
  get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.status(tenantId, id, res);
  }

  @Delete(':id')
  @CancelRouteDocs('Video')
  @HttpCode(204)
  cancel(@TenantId() tenantId: string, @Param('id') id: string) {
    return this.cancelTask(tenantId, id);
  }

  @Post('tasks/:id/retry')
  @RetryRouteDocs('Video')
  retry(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: RetryTaskDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.retryTask(tenantId, id, body, req, res);
  }
}

@ApiTags('images')
@Controller('v1/images/generations')
export class ImagesController extends GenerationRoutes {
  protected readonly kind = 'image';

  @Post('async')
  @CreateRouteDocs('Image')
  create(@TenantId() tenantId: string, @Body() body: CreateGenerationDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.createTask(tenantId, body, req, res);
  }

  @Get(':id/status')
  @StatusRouteDocs('Image', 'Also at GET /v1/images/generations/tasks/{id}, as for videos.')
  get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.status(tenantId, id, res);
  }

  // The same route under the videos' path; left out of the document, where it would be ambiguous with :id/status.
  @Get('tasks/:id')
  @ApiExcludeEndpoint()
  getAlias(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.status(tenantId, id, res);
  }

  @Delete(':id')
  @CancelRouteDocs('Image')
  @HttpCode(204)
  cancel(@TenantId() tenantId: string, @Param('id') id: string) {
    return this.cancelTask(tenantId, id);
  }

  @Post('tasks/:id/retry')
  @RetryRouteDocs('Image')
  retry(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: RetryTaskDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.retryTask(tenantId, id, body, req, res);
  }
}
