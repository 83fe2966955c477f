import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { IdempotencyModule } from '../idempotency/idempotency.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { DeliveriesController } from './deliveries.controller.js';
import { DeliveryLog } from './delivery-log.js';
import { DeliveryPlanner } from './delivery-planner.js';
import { DeliveryProcessor } from './delivery.processor.js';
import { DeliveryLedger } from './delivery-ledger.js';
import { DeliveryService } from './delivery.service.js';
import { DeliveryDispatcher } from './delivery-dispatcher.js';
import { DeliveryRepository } from './delivery.repository.js';
import { EndpointHealth } from './endpoint-health.js';
import { LocalSender } from './local-sender.js';
import { Outbox } from './outbox.js';
import { DeliverySweeper, OutboxRelay } from './outbox-relay.js';
import { DeliveryRateLimits } from './rate-limits.js';
import { SigningSecrets } from './signing-secrets.js';
import { WEBHOOK_QUEUE, WebhookQueue } from './webhook.queue.js';
import { WebhookSender } from './webhook-sender.js';

/**
 * Webhook delivery for every role, behind one port (Outbox): planner, relay, dispatcher, local sender, ledger,
 * sender. Also exported: the delivery log (read-only), the queue (counts for /metrics) and DeliveryService (the
 * shutdown log).
 */
@Module({
  imports: [BullModule.registerQueue({ name: WEBHOOK_QUEUE }), ObservabilityModule],
  providers: [
    WebhookQueue,
    DeliveryPlanner,
    Outbox,
    DeliveryRepository,
    DeliveryDispatcher,
    LocalSender,
    OutboxRelay,
    EndpointHealth,
    DeliveryLog,
    DeliveryLedger,
    DeliveryService,
    WebhookSender,
    SigningSecrets,
    DeliveryRateLimits,
  ],
  // DeliveryRepository and OutboxRelay are for DeliveryWorkersModule's sweeper; callers outside src/webhooks use Outbox.
  exports: [Outbox, OutboxRelay, DeliveryRepository, WebhookQueue, DeliveryLog, DeliveryService],
})
export class WebhooksModule {}

/** Where jobs are processed: the BullMQ processor and the sweeper. */
@Module({ imports: [WebhooksModule], providers: [DeliveryProcessor, DeliverySweeper] })
export class DeliveryWorkersModule {}

/** Where HTTP is served: the delivery routes. */
@Module({ imports: [WebhooksModule, IdempotencyModule], controllers: [DeliveriesController] })
export class DeliveriesModule {}
