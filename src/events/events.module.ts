import { Module } from '@nestjs/common';
import { EventBus } from './event-bus.js';

/** The in-process and cross-process bus of task changes (Redis pub/sub), one per process. */
@Module({ providers: [EventBus], exports: [EventBus] })
export class EventsModule {}
