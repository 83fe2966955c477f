import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { TasksCoreModule } from '../tasks/tasks-core.module.js';
import { DeliveryLog } from './delivery-log.js';
import { DeliveryProcessor } from './delivery.processor.js';
import { DeliveryService } from './delivery.service.js';
import { DeliverySweeper, OutboxRelay } from './outbox-relay.js';
import { DeliveryRateLimits } from './rate-limits.js';
import { SigningSecrets } from './signing-secrets.js';
import { WEBHOOK_QUEUE, WebhookQueue } from './webhook.queue.js';
import { WebhookSender } from './webhook-sender.js';

/** Webhook delivery: the relay runs in every role; the sender, processor and sweeper where jobs are processed. */
@Module({})
export class WebhooksModule {
  static register({ worker }: { worker: boolean }): DynamicModule {
    return {
      module: WebhooksModule,
      global: true,
      imports: [BullModule.registerQueue({ name: WEBHOOK_QUEUE }), TasksCoreModule],
      providers: [
        WebhookQueue,
        OutboxRelay,
        DeliveryLog,
        DeliveryService,
        WebhookSender,
        SigningSecrets,
        DeliveryRateLimits,
        ...(worker ? [DeliveryProcessor, DeliverySweeper] : []),
      ],
      exports: [WebhookQueue, DeliveryLog, DeliveryService],
    };
  }
}
