import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { TasksCoreModule } from '../tasks/tasks-core.module.js';
import { EventsController } from './events.controller.js';
import { EventsGateway } from './events.gateway.js';
import { StreamSlots } from './stream-slots.js';
import { TenantStreams } from './tenant-streams.js';

/** Tenant-wide event streams (issue 22): GET /v1/events, /v1/events/stream (SSE) and /v1/events/ws (WebSocket). */
@Module({
  imports: [AuthModule, TasksCoreModule, ObservabilityModule],
  controllers: [EventsController],
  providers: [TenantStreams, StreamSlots, EventsGateway],
})
export class StreamsModule {}
