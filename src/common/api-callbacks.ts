import { getSchemaPath, type CallbacksObject, type PathItemObject } from '@nestjs/swagger';

/**
 * The webhooks Herald sends, as OpenAPI callbacks of the routes that ask for them (OpenAPI 3.0 has no top-level
 * webhooks). The bodies are schemas of the document (src/openapi.ts), named here.
 */
const webhookCallback = (operationId: string, summary: string, schemas: string[]): PathItemObject => ({
  post: {
    operationId,
    summary,
    description:
      'Signed as docs/WEBHOOKS.md says (webhook-id, webhook-timestamp, webhook-signature); deduplicate on webhook-id.',
    parameters: ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => ({
      name,
      in: 'header',
      required: true,
      schema: { type: 'string' },
    })),
    requestBody: {
      required: true,
      content: {
        'application/json': {
          schema:
            schemas.length === 1
              ? { $ref: getSchemaPath(schemas[0]) }
              : { oneOf: schemas.map((s) => ({ $ref: getSchemaPath(s) })) },
        },
      },
    },
    responses: {
      '2XX': { description: 'Received; any 2xx within WEBHOOK_TIMEOUT_MS ends the delivery.' },
      '4XX': { description: '410 stops the delivery, 408 and 429 are retried, any other 4xx is final.' },
      '5XX': { description: 'Retried on the schedule (webhook_retry or WEBHOOK_RETRY_SCHEDULE).' },
    },
  },
});

/** The per-request webhooks a create route's `webhook_url` receives (seeds/001); `kind` keeps operationIds unique. */
export const taskWebhooks = (kind: string): CallbacksObject => ({
  taskWebhook: {
    '{$request.body#/webhook_url}': webhookCallback(
      `receive${kind}TaskWebhook`,
      'Progress and terminal webhooks of this task',
      ['ConduitProgressWebhook', 'ConduitCompletedWebhook'],
    ),
  },
});

/** The envelopes a registered endpoint receives (seeds/000). */
export const ENDPOINT_WEBHOOKS: CallbacksObject = {
  endpointEvent: {
    '{$request.body#/url}': webhookCallback('receiveEndpointEvent', 'Events the endpoint subscribed to', [
      'EndpointEnvelope',
    ]),
  },
};
