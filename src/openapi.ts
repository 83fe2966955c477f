import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type SchemaObject } from '@nestjs/swagger';
import { documentSharedProblems, PROBLEM_SCHEMA } from './common/api-problems.js';
import type { HeraldConfig } from './config/config.js';
import { EVENT_CATALOGUE } from './events/event-catalogue.js';
import { TERMINAL_STATUSES } from './tasks/task-state.js';

/** Webhook examples quoted from seeds/001 (Conduit) and seeds/000 (envelopes). */
const EXAMPLES = {
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
  envelope: {
    id: 'evt_abc123',
    type: 'task.completed',
    created: 1707148800,
    data: { task_id: '…', status: 'completed' },
  },
};

const text = { type: 'string' } as const;
const added = {
  event_type: { type: 'string', description: 'Same as webhook_type' },
  event_id: { type: 'string', description: 'Same on every retry (and the webhook-id header): deduplicate on it' },
  sequence: { type: 'integer', description: 'Per task, increasing: ignore an event older than one you have' },
  metadata: { type: 'object', additionalProperties: true, description: 'The task’s webhook_metadata' },
} as const;

/** The bodies of the webhooks, as conduitPayload (webhooks/payloads.ts) and envelope (events/event-catalogue.ts) write them. */
const WEBHOOK_SCHEMAS: Record<string, SchemaObject> = {
  ConduitProgressWebhook: {
    type: 'object',
    description: 'Per-request progress webhook (seeds/001)',
    required: ['task_id', 'status', 'webhook_type', 'timestamp', 'progress_percentage', 'event_id', 'sequence'],
    properties: {
      task_id: text,
      status: text,
      webhook_type: { type: 'string', enum: ['video_generation_progress', 'image_generation_progress'] },
      timestamp: { type: 'string', format: 'date-time' },
      progress_percentage: { type: 'integer', minimum: 0, maximum: 100 },
      message: { type: 'string', nullable: true },
      estimated_seconds_remaining: { type: 'integer' },
      ...added,
    },
    example: EXAMPLES.progressWebhook,
  },
  ConduitCompletedWebhook: {
    type: 'object',
    description: 'Per-request completed / failed / cancelled webhook (seeds/001); `error` unless completed',
    required: ['task_id', 'status', 'webhook_type', 'timestamp', 'model', 'prompt', 'event_id', 'sequence'],
    properties: {
      task_id: text,
      status: { type: 'string', enum: [...TERMINAL_STATUSES] },
      webhook_type: { type: 'string', enum: ['video_generation_completed', 'image_generation_completed'] },
      timestamp: { type: 'string', format: 'date-time' },
      video_url: { type: 'string', nullable: true },
      image_url: { type: 'string', nullable: true },
      image_urls: { type: 'array', items: text },
      error: { type: 'string', nullable: true },
      generation_duration_seconds: { type: 'number' },
      model: text,
      prompt: text,
      ...added,
    },
    example: EXAMPLES.completedWebhook,
  },
  EndpointEnvelope: {
    type: 'object',
    description: 'Envelope sent to registered endpoints (seeds/000)',
    required: ['id', 'type', 'created', 'data'],
    properties: {
      id: text,
      type: { type: 'string', enum: EVENT_CATALOGUE.map((e) => e.type) },
      created: { type: 'integer', description: 'Unix seconds' },
      data: { type: 'object', additionalProperties: true },
    },
    example: EXAMPLES.envelope,
  },
};

/** OpenAPI 3 document at /docs (UI, served locally) and /docs-json, with the webhook payloads as schemas. */
export function setupOpenApi(app: INestApplication, config: HeraldConfig): void {
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Herald')
      .setDescription(
        'Async generation jobs with signed webhook callbacks, wire-compatible with Conduit. The webhooks are the callbacks ' +
          'of the create routes (per-request webhook_url) and of POST /v1/webhooks (registered endpoints); see docs/WEBHOOKS.md. ' +
          'Every error is application/problem+json (the Problem schema) with a stable `code`.',
      )
      .setVersion(config.version)
      .setLicense('MIT', 'https://spdx.org/licenses/MIT.html')
      // Relative, so "Try it out" works from whichever host serves these docs; the path keeps a proxy's prefix.
      .addServer(
        new URL(config.publicBaseUrl).pathname.replace(/(.)\/+$/, '$1'),
        'This Herald (the path of PUBLIC_BASE_URL)',
      )
      .addBearerAuth(
        {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'hk_… API key',
          description: 'API key: Authorization: Bearer hk_…',
        },
        'bearer',
      )
      .addSecurityRequirements('bearer')
      .build(),
  );
  document.components ??= {};
  document.components.schemas = {
    ...document.components.schemas,
    Problem: PROBLEM_SCHEMA,
    ...WEBHOOK_SCHEMAS,
  };
  delete document.info.contact; // DocumentBuilder's empty default, which tells a reader nothing
  documentSharedProblems(document);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}
