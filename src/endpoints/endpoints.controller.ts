import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiIdempotent, ApiProblems, IDEMPOTENCY_PROBLEMS } from '../common/api-problems.js';
import { ErrorCode } from '../common/errors.js';
import { ENDPOINT_WEBHOOKS } from '../common/api-callbacks.js';
import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IdempotentReplies } from '../idempotency/idempotent-replies.js';
import { ApiKeysService } from '../auth/api-keys.service.js';
import { TenantId } from '../auth/auth.guard.js';
import { deliveryView } from '../webhooks/delivery-view.js';
import { CreateEndpointDto, EndpointDeliveriesQuery, RecoverDto, UpdateEndpointDto } from './dto/endpoint.dto.js';
import { endpointView } from './endpoint-view.js';
import { EndpointsService } from './endpoints.service.js';
import { EVENT_CATALOGUE } from '../events/event-catalogue.js';

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
  @ApiOperation({ operationId: 'getWebhookSecret', summary: 'Get the signing secret of per-request webhooks' })
  async secret(@TenantId() tenantId: string) {
    return { secret: await this.keys.webhookSecret(tenantId) };
  }

  @Get('event-types')
  @ApiOperation({ operationId: 'listEventTypes', summary: 'List the event types an endpoint can subscribe to' })
  eventTypes() {
    return { data: EVENT_CATALOGUE };
  }

  @Post('webhooks')
  @ApiOperation({ operationId: 'createEndpoint', summary: 'Register a webhook endpoint', callbacks: ENDPOINT_WEBHOOKS })
  @ApiResponse({ status: 201, description: 'The endpoint, with its secret (shown only here and on rotate)' })
  @ApiIdempotent()
  @ApiProblems(ErrorCode.ValidationFailed, ErrorCode.WebhookUrlBlocked, ...IDEMPOTENCY_PROBLEMS)
  create(
    @TenantId() tenantId: string,
    @Body() body: CreateEndpointDto,
    @Req() req: FastifyRequest,
    @Res() res: FastifyReply,
  ) {
    return this.idempotent.respond(req, res, tenantId, async () => {
      const { endpoint, secret } = await this.endpoints.create(tenantId, body);
      return { status: 201, body: endpointView(endpoint, secret) };
    });
  }

  @Get('webhooks')
  @ApiOperation({ operationId: 'listEndpoints', summary: 'List webhook endpoints' })
  async list(@TenantId() tenantId: string) {
    return { data: (await this.endpoints.list(tenantId)).map((e) => endpointView(e)) };
  }

  @Get('webhooks/:id')
  @ApiOperation({ operationId: 'getEndpoint', summary: 'Get a webhook endpoint' })
  @ApiResponse({ status: 200, description: 'The endpoint' })
  @ApiProblems(ErrorCode.EndpointNotFound)
  async get(@TenantId() tenantId: string, @Param('id') id: string) {
    return endpointView(await this.endpoints.get(tenantId, id));
  }

  @Patch('webhooks/:id')
  @ApiOperation({
    operationId: 'updateEndpoint',
    summary: 'Change a webhook endpoint (url, events, headers, rate limit, batch, enable / disable)',
  })
  @ApiResponse({ status: 200, description: 'The endpoint' })
  @ApiProblems(ErrorCode.EndpointNotFound, ErrorCode.ValidationFailed, ErrorCode.WebhookUrlBlocked)
  async update(@TenantId() tenantId: string, @Param('id') id: string, @Body() body: UpdateEndpointDto) {
    return endpointView(await this.endpoints.update(tenantId, id, body));
  }

  @Delete('webhooks/:id')
  @ApiOperation({ operationId: 'deleteEndpoint', summary: 'Delete a webhook endpoint' })
  @ApiResponse({ status: 204, description: 'Deleted' })
  @ApiProblems(ErrorCode.EndpointNotFound)
  @HttpCode(204)
  async remove(@TenantId() tenantId: string, @Param('id') id: string) {
    await this.endpoints.remove(tenantId, id);
  }

  @Post('webhooks/:id/test')
  @ApiOperation({ operationId: 'testEndpoint', summary: 'Send a webhook.test event to an endpoint' })
  @ApiResponse({ status: 202, description: 'The delivery of the test event' })
  @ApiIdempotent()
  @ApiProblems(ErrorCode.EndpointNotFound, ErrorCode.EndpointDisabled, ...IDEMPOTENCY_PROBLEMS)
  test(@TenantId() tenantId: string, @Param('id') id: string, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.idempotent.respond(req, res, tenantId, async () => ({
      status: 202,
      body: deliveryView(await this.endpoints.sendTest(tenantId, id)),
    }));
  }

  @Post('webhooks/:id/rotate-secret')
  @ApiOperation({
    operationId: 'rotateEndpointSecret',
    summary: 'Rotate an endpoint’s signing secret (the old one signs too for 24 h)',
  })
  @ApiResponse({ status: 200, description: '{secret, previous_secret_expires_at}' })
  @ApiIdempotent()
  @ApiProblems(ErrorCode.EndpointNotFound, ...IDEMPOTENCY_PROBLEMS)
  rotate(@TenantId() tenantId: string, @Param('id') id: string, @Req() req: FastifyRequest, @Res() res: FastifyReply) {
    return this.idempotent.respond(req, res, tenantId, async () => {
      const { secret, previousSecretExpiresAt } = await this.endpoints.rotateSecret(tenantId, id);
      return { status: 200, body: { secret, previous_secret_expires_at: previousSecretExpiresAt.toISOString() } };
    });
  }

  @Post('webhooks/:id/recover')
  @ApiOperation({
    operationId: 'recoverEndpoint',
    summary: 'Send again the failed deliveries to an endpoint since a time',
  })
  @ApiResponse({ status: 202, description: '{recovered}: how many deliveries were queued again' })
  @ApiIdempotent()
  @ApiProblems(ErrorCode.EndpointNotFound, ErrorCode.EndpointDisabled, ...IDEMPOTENCY_PROBLEMS)
  recover(
    @TenantId() tenantId: string,
    @Param('id') id: string,
    @Body() body: RecoverDto,
    @Req() req: FastifyRequest,
    @Res() res: FastifyReply,
  ) {
    return this.idempotent.respond(req, res, tenantId, async () => ({
      status: 202,
      body: { recovered: await this.endpoints.recover(tenantId, id, new Date(body.since)) },
    }));
  }

  @Get('webhooks/:id/deliveries')
  @ApiOperation({ operationId: 'listEndpointDeliveries', summary: 'List an endpoint’s deliveries with success stats' })
  @ApiResponse({ status: 200, description: '{data, next_cursor, stats}' })
  @ApiProblems(ErrorCode.EndpointNotFound, ErrorCode.ValidationFailed)
  async deliveries(@TenantId() tenantId: string, @Param('id') id: string, @Query() query: EndpointDeliveriesQuery) {
    const page = await this.endpoints.deliveriesOf(tenantId, id, query);
    return { data: page.data.map(deliveryView), next_cursor: page.next_cursor, stats: page.stats };
  }
}
