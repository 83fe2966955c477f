import { circuitView } from '../webhooks/circuit-breaker.js';
import { redactHeaders } from '../webhooks/webhook-headers.js';
import type { Endpoint } from '../webhooks/endpoint.entity.js';

/** An endpoint as the API shows it; the secret only on create and rotate, header values never. */
export function endpointView(e: Endpoint, secret?: string) {
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    events: e.events,
    headers: redactHeaders(e.headerNames),
    status: e.status,
    disabled_reason: e.disabledReason,
    disabled_at: e.disabledAt?.toISOString() ?? null,
    failing_since: e.failingSince?.toISOString() ?? null,
    rate_limit_per_second: e.rateLimitPerSecond ?? null,
    batch: e.batchMaxEvents ? { max_events: e.batchMaxEvents, max_wait_ms: e.batchMaxWaitMs ?? 0 } : null,
    ...circuitView(e.circuit),
    last_delivery: e.lastDeliveryAt
      ? { at: e.lastDeliveryAt.toISOString(), status_code: e.lastStatusCode, outcome: e.lastOutcome }
      : null,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
    ...(secret ? { secret } : {}),
  };
}
