import { Module } from '@nestjs/common';
import { EventBus } from '../events/event-bus.js';
import { DeliveryPlanner } from '../webhooks/delivery-planner.js';
import { OutboxSignal } from '../webhooks/outbox-signal.js';
import { TaskTransitions } from './task-transitions.service.js';

/** Task persistence rules shared by the API and the workers, with the outbox they write to. */
@Module({
  providers: [TaskTransitions, DeliveryPlanner, OutboxSignal, EventBus],
  exports: [TaskTransitions, DeliveryPlanner, OutboxSignal, EventBus],
})
export class TasksCoreModule {}
