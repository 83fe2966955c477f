import { ApiTags } from '@nestjs/swagger';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IdempotentReplies } from '../idempotency/idempotency.module.js';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { TenantId } from '../auth/auth.guard.js';
import { deliveryView } from '../webhooks/delivery-view.js';
import { CreateEndpointDto, EndpointDeliveriesQuery, RecoverDto, UpdateEndpointDto } from './dto/endpoint.dto.js';
import { endpointView } from './endpoint-view.js';
import { EndpointsService } from './endpoints.service.js';
import { EVENT_CATALOGUE } from './event-catalogue.js';

@ApiTags('webhooks')
@Controller('v1')
export class EndpointsController {
  constructor(
    private readonly endpoints: EndpointsService,
    private readonly keys: ApiKeysService,
    private readonly idempotent: IdempotentReplies,
  ) {}

  /** The tenant's signing secret for per-request webhooks (like Replicate's default secret). Declared before :id. */
  @Get('webhooks/secret')
  async secret(@TenantId() tenantId: string) {
    return { secret: await this.keys.webhookSecret(tenantId) };
  }

  @Get('event-types')
  eventTypes() {
    return { data: EVENT_CATALOGUE };
  }

  @Post('webhooks')
  create(@TenantId() tenantId: string, @Body() body: CreateEndpointDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.idempotent.respond(req, res, tenantId, async () => {
      const { endpoint, secret } = await this.endpoints.create(tenantId, body);
      return { status: 201, body: endpointView(endpoint, secret) };
    });
  }

  @Get('webhooks')
  async list(@TenantId() tenantId: string) {
    return { data: (await this.endpoints.list(tenantId)).map((e) => endpointView(e)) };
  }

  @Get('webhooks/:id')
  async get(@TenantId() tenantId: string, @Param('id') id: string) {
    return endpointView(await this.endpoints.get(tenantId, id));
  }

  @Patch('webhooks/:id')
  async update(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: UpdateEndpointDto) {
    return endpointView(await this.endpoints.update(tenantId, id, body));
  }

  @Delete('webhooks/:id')
  @HttpCode(204)
  async remove(@TenantId() tenantId: string, @Param('id') id: string) {
    await this.endpoints.remove(tenantId, id);
  }

  @Post('webhooks/:id/test')
  test(@TenantId() tenantId: string, @Param('id') id: string, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.idempotent.respond(req, res, tenantId, async () => ({ status: 202, body: deliveryView(await this.endpoints.sendTest(tenantId, id)) }));
  }

  @Post('webhooks/:id/rotate-secret')
  rotate(@TenantId() tenantId: string, @Param('id') id: string, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.idempotent.respond(req, res, tenantId, async () => {
      const { secret, previousSecretExpiresAt } = await this.endpoints.rotateSecret(tenantId, id);
      return { status: 200, body: { secret, previous_secret_expires_at: previousSecretExpiresAt.toISOString() } };
    });
  }

  @Post('webhooks/:id/recover')
  recover(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: RecoverDto, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.idempotent.respond(req, res, tenantId, async () => ({ status: 202, body: { recovered: await this.endpoints.recover(tenantId, id, new Date(body.since)) } }));
  }

  @Get('webhooks/:id/deliveries')
  async deliveries(@TenantId() tenantId: string, @Param('id') id: string, @Query() query: EndpointDeliveriesQuery) {
    const page = await this.endpoints.deliveriesOf(tenantId, id, query);
    return { data: page.data.map(deliveryView), next_cursor: page.next_cursor, stats: page.stats };
  }
}
