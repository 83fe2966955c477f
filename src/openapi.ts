import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { HeraldConfig } from './config/config.js';
import { EVENT_CATALOGUE } from './endpoints/event-catalogue.js';

/** Examples quoted from seeds/001 (Conduit) and seeds/000 (envelopes). */
export const EXAMPLES = {
  createVideo: {
    model: 'minimax-video',
    prompt: 'A serene mountain landscape with clouds',
    duration: 6,
    size: '1280x720',
    webhook_url: 'https://your-app.com/webhooks/video-complete',
    webhook_headers: { Authorization: 'Bearer your-webhook-secret', 'X-Custom-Header': 'custom-value' },
  },
  created: {
    task_id: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
    status: 'pending',
    created_at: '2024-01-20T15:29:00.000Z',
    estimated_completion_time: '2024-01-20T15:29:10.000Z',
    estimated_time_to_completion: 10,
    check_status_url: 'http://localhost:3000/v1/videos/generations/tasks/01a2067a-85e7-772a-b5bb-a39c8118ce75',
  },
  progressWebhook: {
    task_id: '550e8400-e29b-41d4-a716-446655440000',
    status: 'processing',
    webhook_type: 'video_generation_progress',
    timestamp: '2024-01-20T15:29:30.123Z',
    progress_percentage: 50,
    message: 'Rendering video content',
    estimated_seconds_remaining: 30,
    event_type: 'video_generation_progress',
    event_id: '01a2067a-9c41-7d3e-8a0b-5f2c8e1d4a77',
    sequence: 7,
  },
  completedWebhook: {
    task_id: '550e8400-e29b-41d4-a716-446655440000',
    status: 'completed',
    webhook_type: 'video_generation_completed',
    timestamp: '2024-01-20T15:30:45.123Z',
    video_url: 'https://cdn.example.com/videos/generated-video.mp4',
    generation_duration_seconds: 45.5,
    model: 'minimax-video',
    prompt: 'A serene mountain landscape with clouds',
    event_type: 'video_generation_completed',
    event_id: '01a2067a-b1f0-7c55-9e3d-0a6b7c8d9e10',
    sequence: 12,
  },
  failedWebhook: {
    task_id: '550e8400-e29b-41d4-a716-446655440000',
    status: 'failed',
    webhook_type: 'video_generation_completed',
    timestamp: '2024-01-20T15:30:45.123Z',
    error: 'Insufficient credits for video generation',
    model: 'minimax-video',
    prompt: 'A serene mountain landscape with clouds',
  },
  envelope: { id: 'evt_abc123', type: 'task.completed', created: 1707148800, data: { task_id: '…', status: 'completed' } },
};

/** OpenAPI 3 document at /docs (UI, served locally) and /docs-json, with the webhook payloads as schemas. */
export function setupOpenApi(app: INestApplication, config: HeraldConfig): void {
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Herald')
      .setDescription(
        'Async generation jobs with signed webhook callbacks, wire-compatible with Conduit. Webhook payloads are listed under ' +
          'Schemas (ConduitProgressWebhook, ConduitCompletedWebhook, EndpointEnvelope); see docs/WEBHOOKS.md.',
      )
      .setVersion(config.version)
      .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer hk_…' }, 'bearer')
      .addSecurityRequirements('bearer')
      .build(),
  );
  document.components ??= {};
  document.components.schemas = {
    ...document.components.schemas,
    ConduitProgressWebhook: { type: 'object', description: 'Per-request progress webhook (seeds/001)', example: EXAMPLES.progressWebhook },
    ConduitCompletedWebhook: { type: 'object', description: 'Per-request completed / failed / cancelled webhook (seeds/001)', example: EXAMPLES.completedWebhook },
    EndpointEnvelope: { type: 'object', description: `Envelope sent to registered endpoints (seeds/000); types: ${EVENT_CATALOGUE.map((e) => e.type).join(', ')}`, example: EXAMPLES.envelope },
  };
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}
