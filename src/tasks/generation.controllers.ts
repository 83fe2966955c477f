import { ApiBody, ApiResponse, ApiTags } from '@nestjs/swagger';
import { EXAMPLES } from '../openapi.js';
import { applyDecorators, Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { preferredWait, Reply } from '../common/reply.js';
import { TaskWatcher } from '../events/task-watcher.js';
import { IdempotentReplies } from '../idempotency/idempotency.module.js';
import { TenantId } from '../auth/auth.guard.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { CreateGenerationDto } from './dto/create-generation.dto.js';
import { RetryTaskDto } from './dto/list-tasks.query.js';
import { TaskPresenter } from './task-presenter.js';
import { createdView } from './task-view.js';
import type { TaskKind } from './task.entity.js';
import { TasksService } from './tasks.service.js';

/** OpenAPI for the create route of both kinds: the seeds' request, and each answer it can get. */
const CreateRouteDocs = () =>
  applyDecorators(
    ApiBody({ type: CreateGenerationDto, examples: { conduit: { summary: 'seeds/001 request', value: EXAMPLES.createVideo } } }),
    ApiResponse({ status: 202, description: 'Accepted; poll check_status_url or wait for webhooks', schema: { example: EXAMPLES.created } }),
    ApiResponse({ status: 200, description: 'With Prefer: wait=N, the finished task when it ended within N seconds' }),
    ApiResponse({ status: 422, description: 'A known field has a wrong type or range (problem+json naming it)' }),
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
    return this.idempotent.respond(req, res, tenantId, async (): Promise<Reply> => {
      const task = await this.tasks.create(tenantId, this.kind, body);
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
  @CreateRouteDocs()
  create(@TenantId() tenantId: string, @Body() body: CreateGenerationDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.createTask(tenantId, body, req, res);
  }

  @Get('tasks/:id')
  get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.status(tenantId, id, res);
  }

  @Delete(':id')
  @HttpCode(204)
  cancel(@TenantId() tenantId: string, @Param('id') id: string) {
    return this.cancelTask(tenantId, id);
  }

  @Post('tasks/:id/retry')
  retry(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: RetryTaskDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.retryTask(tenantId, id, body, req, res);
  }
}

@ApiTags('images')
@Controller('v1/images/generations')
export class ImagesController extends GenerationRoutes {
  protected readonly kind = 'image';

  @Post('async')
  @CreateRouteDocs()
  create(@TenantId() tenantId: string, @Body() body: CreateGenerationDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.createTask(tenantId, body, req, res);
  }

  @Get(':id/status')
  get(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.status(tenantId, id, res);
  }

  @Get('tasks/:id')
  getAlias(@TenantId() tenantId: string, @Param('id') id: string, @Res({ passthrough: true }) res: FastifyReply) {
    return this.status(tenantId, id, res);
  }

  @Delete(':id')
  @HttpCode(204)
  cancel(@TenantId() tenantId: string, @Param('id') id: string) {
    return this.cancelTask(tenantId, id);
  }

  @Post('tasks/:id/retry')
  retry(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: RetryTaskDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.retryTask(tenantId, id, body, req, res);
  }
}
