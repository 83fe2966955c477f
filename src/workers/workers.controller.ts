import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Inject } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { modelCatalog } from './model-catalog.js';
import { WorkerRegistry } from './worker-registry.js';

const STARTED_AT = new Date();

/** Read-only views for tenants (any API key: the global guard), the workers serving this Herald and its models. */
@ApiTags('workers')
@Controller('v1')
export class WorkersController {
  constructor(
    private readonly registry: WorkerRegistry,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /** Workers are global (they serve every tenant's worker-routed tasks); tenants see them read-only. */
  @Get('workers')
  @ApiOperation({
    operationId: 'listWorkers',
    summary: 'Workers seen by this Herald: id, label, models, kinds, leases held, last seen',
  })
  @ApiResponse({ status: 200, description: '{data: [{id, label, models, kinds, leases_held, last_seen_at}]}' })
  async workers() {
    return { data: await this.registry.list() };
  }

  @Get('models')
  @ApiOperation({
    operationId: 'listModels',
    summary: 'Models offered (OpenAI list shape): the exact ids of MODEL_ROUTES and of online workers',
  })
  @ApiResponse({ status: 200, description: '{object: "list", data: [{id, object, created, owned_by}]}' })
  async models() {
    const catalog = await this.catalog();
    return {
      object: 'list',
      data: catalog.map((m) => ({
        id: m.id,
        object: 'model',
        created: Math.floor(m.created.getTime() / 1000),
        owned_by: m.provider,
      })),
    };
  }

  /** Conduit's discovery shape, as its Node SDK's discovery.getModels() reads it. */
  @Get('discovery/models')
  @ApiOperation({
    operationId: 'discoverModels',
    summary:
      "Models offered, in Conduit's discovery shape ({data: [{id, provider, display_name, capabilities, last_verified}], count})",
  })
  @ApiResponse({ status: 200, description: '{data, count}' })
  async discovery() {
    const data = (await this.catalog()).map((m) => ({
      id: m.id,
      provider: m.provider,
      display_name: m.id,
      capabilities: {
        chat: false,
        chat_stream: false,
        embeddings: false,
        image_generation: m.kinds.includes('image'),
        vision: false,
        video_generation: m.kinds.includes('video'),
        video_understanding: false,
        function_calling: false,
        tool_use: false,
        json_mode: false,
      },
      last_verified: m.lastVerified.toISOString(),
    }));
    return { data, count: data.length };
  }

  private async catalog() {
    return modelCatalog(this.config.modelRoutes, await this.registry.online(), new Date(), STARTED_AT);
  }
}
