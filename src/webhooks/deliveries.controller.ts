import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiIdempotent, ApiProblems, IDEMPOTENCY_PROBLEMS } from '../common/api-problems.js';
import { Controller, Get, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { IdempotentReplies } from '../idempotency/idempotent-replies.js';
import { TenantId } from '../auth/auth.guard.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { DeliveryLog } from './delivery-log.js';
import { attemptView, deliveryView } from './delivery-view.js';
import { DeliveryService } from './delivery.service.js';
import { Outbox } from './outbox.js';

@ApiTags('deliveries')
@Controller('v1')
export class DeliveriesController {
  constructor(
    private readonly log: DeliveryLog,
    private readonly deliveries: DeliveryService,
    private readonly outbox: Outbox,
    private readonly idempotent: IdempotentReplies,
  ) {}

  @Get('deliveries/:id')
  @ApiOperation({ operationId: 'getDelivery', summary: 'Get a delivery with its attempt log' })
  @ApiResponse({ status: 200, description: 'The delivery and attempt_log' })
  @ApiProblems(ErrorCode.DeliveryNotFound)
  async get(@TenantId() tenantId: string, @Param('id') id: string) {
    const { delivery, attempts, batch } = await this.log.get(tenantId, id);
    return {
      ...deliveryView(delivery),
      batch: delivery.batchId
        ? {
            id: delivery.batchId,
            events: batch.map((d) => ({ delivery_id: d.id, event_id: d.eventId, event_type: d.eventType })),
          }
        : null,
      attempt_log: attempts.map(attemptView),
    };
  }

  @Post('deliveries/:id/redeliver')
  @ApiOperation({ operationId: 'redeliverDelivery', summary: 'Send a delivery’s event again (same webhook-id)' })
  @ApiResponse({ status: 202, description: 'The new delivery' })
  @ApiIdempotent()
  @ApiProblems(ErrorCode.DeliveryNotFound, ...IDEMPOTENCY_PROBLEMS)
  redeliver(
    @TenantId() tenantId: string,
    @Param('id') id: string,
    @Req() req: FastifyRequest,
    @Res() res: FastifyReply,
  ) {
    return this.idempotent.respond(req, res, tenantId, async () => {
      const copy = await this.outbox.redeliver(tenantId, id);
      if (!copy) throw new DomainException(ErrorCode.DeliveryNotFound, `No delivery with id ${id}.`);
      return { status: 202, body: deliveryView(copy) };
    });
  }
}
