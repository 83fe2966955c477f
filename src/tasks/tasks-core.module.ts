import { Module } from '@nestjs/common';
import { EventsModule } from '../events/events.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { TaskTransitions } from './task-transitions.service.js';

/** Task persistence rules shared by the API and the workers; they write delivery's outbox and publish on the bus. */
@Module({
  imports: [WebhooksModule, EventsModule, ObservabilityModule],
  providers: [TaskTransitions],
  exports: [TaskTransitions, EventsModule],
})
export class TasksCoreModule {}
