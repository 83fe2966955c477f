import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { IdempotencyModule } from '../idempotency/idempotency.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { DeliveriesController } from './deliveries.controller.js';
import { DeliveryLog } from './delivery-log.js';
import { DeliveryPlanner } from './delivery-planner.js';
import { DeliveryProcessor } from './delivery.processor.js';
import { DeliveryService } from './delivery.service.js';
import { OutboxSignal } from './outbox-signal.js';
import { DeliverySweeper, OutboxRelay } from './outbox-relay.js';
import { DeliveryRateLimits } from './rate-limits.js';
import { SigningSecrets } from './signing-secrets.js';
import { WEBHOOK_QUEUE, WebhookQueue } from './webhook.queue.js';
import { WebhookSender } from './webhook-sender.js';

/** Webhook delivery for every role: the outbox (planner, signal, relay), the log, the sender. */
@Module({
  imports: [BullModule.registerQueue({ name: WEBHOOK_QUEUE }), ObservabilityModule],
  providers: [
    WebhookQueue,
    DeliveryPlanner,
    OutboxSignal,
    OutboxRelay,
    DeliveryLog,
    DeliveryService,
    WebhookSender,
    SigningSecrets,
    DeliveryRateLimits,
  ],
  exports: [WebhookQueue, DeliveryPlanner, OutboxSignal, DeliveryLog, DeliveryService],
})
export class WebhooksModule {}

/** Where jobs are processed: the BullMQ processor and the sweeper. */
@Module({ imports: [WebhooksModule], providers: [DeliveryProcessor, DeliverySweeper] })
export class DeliveryWorkersModule {}

/** Where HTTP is served: the delivery routes. */
@Module({ imports: [WebhooksModule, IdempotencyModule], controllers: [DeliveriesController] })
export class DeliveriesModule {}
