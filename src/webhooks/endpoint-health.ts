import { Inject, Injectable, Logger } from '@nestjs/common';
import { EntityManager, Not } from 'typeorm';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { DeliveryPlanner } from './delivery-planner.js';
import { failingTooLong } from './endpoint-rules.js';
import { Endpoint } from './endpoint.entity.js';
import type { Verdict } from './retry-policy.js';

/** One attempt to an endpoint, as far as its health depends on it. */
export interface EndpointAttempt {
  endpointId: string;
  verdict: Verdict;
  statusCode?: number;
}

/**
 * Endpoint health, recorded with each round of attempts: the last-delivery summary and failure streak, and
 * disabling an endpoint that answered 410 Gone or failed every delivery for ENDPOINT_DISABLE_AFTER_HOURS (its
 * tenant's other endpoints are told with a `webhook.disabled` event).
 */
@Injectable()
export class EndpointHealth {
  private readonly logger = new Logger('Delivery');

  constructor(
    private readonly planner: DeliveryPlanner,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /** In endpoint key order, so that two rounds in flight lock endpoints in the same order. */
  async record(em: EntityManager, attempts: readonly EndpointAttempt[], now: Date): Promise<void> {
    const byEndpoint = new Map<string, EndpointAttempt[]>();
    for (const a of attempts) byEndpoint.set(a.endpointId, [...(byEndpoint.get(a.endpointId) ?? []), a]);
    for (const [endpointId, ofEndpoint] of [...byEndpoint].sort(([a], [b]) => a.localeCompare(b)))
      await this.recordOn(em, endpointId, ofEndpoint, now);
  }

  /** Keeps the endpoint's last-delivery summary and failure streak; disables it on 410 or a streak too long. */
  private async recordOn(
    em: EntityManager,
    endpointId: string,
    attempts: EndpointAttempt[],
    now: Date,
  ): Promise<boolean> {
    const endpoint = await em.findOneBy(Endpoint, { id: endpointId });
    if (!endpoint) return false;
    let failingSince = endpoint.failingSince;
    let gone = false;
    for (const { verdict } of attempts) {
      failingSince = verdict.outcome === 'succeeded' ? null : (failingSince ?? now);
      gone ||= verdict.outcome === 'failed' && verdict.gone === true;
    }
    const last = attempts[attempts.length - 1];
    await em.update(
      Endpoint,
      { id: endpointId },
      {
        lastDeliveryAt: now,
        lastStatusCode: last.statusCode ?? null,
        lastOutcome: last.verdict.outcome,
        failingSince,
      },
    );
    if (endpoint.status !== 'enabled' || (last.verdict.outcome === 'succeeded' && !gone)) return false;
    const limit = this.config.endpointDisableAfterHours;
    const reason = gone
      ? 'The endpoint answered 410 Gone'
      : failingTooLong(failingSince, now, limit)
        ? `Every delivery failed for ${limit} hours (since ${failingSince!.toISOString()})`
        : undefined;
    if (!reason) return false;
    return this.disable(em, endpoint, reason, now);
  }

  /** Disables an endpoint and tells the tenant's other endpoints that subscribe to `webhook.disabled`. */
  async disable(em: EntityManager, endpoint: Endpoint, reason: string, now = new Date()): Promise<boolean> {
    const result = await em.update(
      Endpoint,
      { id: endpoint.id, status: 'enabled' },
      { status: 'disabled', disabledReason: reason, disabledAt: now, updatedAt: now },
    );
    if (!result.affected) return false;
    this.logger.warn(`endpoint ${endpoint.id} disabled: ${reason}`);
    const others = await em.find(Endpoint, {
      where: { tenantId: endpoint.tenantId, status: 'enabled', id: Not(endpoint.id) },
    });
    await this.planner.planOperational(em, others, 'webhook.disabled', {
      endpoint_id: endpoint.id,
      url: endpoint.url,
      reason,
      disabled_at: now.toISOString(),
    });
    return true;
  }
}
