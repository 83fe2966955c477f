import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, LessThan, MoreThan, Not } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { v7 as uuidv7 } from 'uuid';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { activeSecrets, failingTooLong } from '../endpoints/endpoint-rules.js';
import { Endpoint } from '../endpoints/endpoint.entity.js';
import { Metrics } from '../observability/metrics.js';
import { DeliveryPlanner } from './delivery-planner.js';
import { Delivery, DeliveryAttempt, REQUEST_TARGET } from './delivery.entity.js';
import { OutboxSignal } from './outbox-signal.js';
import { decide, Verdict } from './retry-policy.js';
import { signatureHeader, signLegacy } from './signature.js';
import { SigningSecrets } from './signing-secrets.js';
import { SendResult, WebhookSender } from './webhook-sender.js';

export type DeliveryRun = Verdict | { outcome: 'skipped' } | { outcome: 'wait'; delayMs: number };

// When an earlier delivery to the same target is on the wire, a later one waits this long and looks again.
const ORDER_WAIT_MS = 20;

/** Masks what must never be stored or shown: the caller's header values and the signatures. */
export function redactRequestHeaders(headers: Record<string, string>, callerHeaderNames: readonly string[]): Record<string, string> {
  const caller = new Set(callerHeaderNames.map((n) => n.toLowerCase()));
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => {
      const lower = name.toLowerCase();
      if (caller.has(lower) || lower === 'x-signature') return [name, '***'];
      if (lower === 'webhook-signature') return [name, value.split(' ').map((s) => `${s.split(',')[0]},***`).join(' ')];
      return [name, value];
    }),
  );
}

type Target = { secrets: string[] } | { refused: string };

/** The delivery rules: claim, order, sign, send, record the attempt, decide what comes next, look after endpoints. */
@Injectable()
export class DeliveryService {
  private readonly logger = new Logger('Delivery');

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly sender: WebhookSender,
    private readonly secrets: SigningSecrets,
    private readonly box: SecretBox,
    private readonly planner: DeliveryPlanner,
    private readonly outbox: OutboxSignal,
    private readonly metrics: Metrics,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  async deliver(deliveryId: string): Promise<DeliveryRun> {
    const delivery = await this.db.getRepository(Delivery).findOneBy({ id: deliveryId });
    if (!delivery || delivery.status !== 'pending') return { outcome: 'skipped' };
    // Never overtake an earlier event of the same task to the same target that is being sent right now.
    if (delivery.taskId && (await this.earlierOnTheWire(delivery, delivery.taskId))) return { outcome: 'wait', delayMs: ORDER_WAIT_MS };
    const target = await this.resolveTarget(delivery);
    if ('refused' in target) {
      await this.uow.run((em) => em.update(Delivery, { id: delivery.id, status: 'pending' }, { status: 'failed', lastError: target.refused, updatedAt: new Date(), completedAt: new Date() }));
      return { outcome: 'failed', reason: target.refused };
    }
    const attempt = delivery.attempts + 1;
    if (!(await this.claim(delivery.id, attempt))) return { outcome: 'skipped' };

    const callerHeaders: Record<string, string> = delivery.headersSealed ? JSON.parse(this.box.decrypt(delivery.headersSealed)) : {};
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      ...callerHeaders,
      'Content-Type': 'application/json',
      'User-Agent': this.config.webhook.userAgent,
      'webhook-id': delivery.eventId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader(target.secrets, delivery.eventId, timestamp, delivery.payload),
      'X-Signature': signLegacy(target.secrets[0], delivery.payload),
    };
    const result = await this.sender.send({ url: delivery.url, body: delivery.payload, headers });
    const verdict = decide(result, attempt, delivery.schedule);
    const disabledOne = await this.record(delivery, attempt, result, verdict, redactRequestHeaders(headers, Object.keys(callerHeaders)));
    if (disabledOne) this.outbox.kick();
    this.observe(delivery, result, verdict);
    return verdict;
  }

  private observe(d: Delivery, result: SendResult, verdict: Verdict): void {
    this.metrics.attempts.inc({ outcome: verdict.outcome });
    this.metrics.attemptDuration.observe(result.durationMs / 1000);
    if (verdict.outcome === 'retry') return;
    this.metrics.deliveries.inc({ outcome: verdict.outcome });
    if (verdict.outcome === 'succeeded') this.metrics.deliveryLatency.observe((Date.now() - d.createdAt.getTime()) / 1000);
  }

  private async resolveTarget(d: Delivery): Promise<Target> {
    if (d.target === REQUEST_TARGET) return { secrets: await this.secrets.forTenant(d.tenantId) };
    const endpoint = await this.db.getRepository(Endpoint).findOneBy({ id: d.target });
    if (!endpoint) return { refused: 'endpoint deleted' };
    if (endpoint.status !== 'enabled') return { refused: `endpoint disabled: ${endpoint.disabledReason ?? 'by its owner'}` };
    const previous = endpoint.previousSecretSealed ? this.box.decrypt(endpoint.previousSecretSealed) : null;
    return { secrets: activeSecrets(this.box.decrypt(endpoint.secretSealed), previous, endpoint.previousSecretExpiresAt, new Date()) };
  }

  private earlierOnTheWire(d: Delivery, taskId: string): Promise<boolean> {
    return this.db.getRepository(Delivery).exists({ where: { taskId, target: d.target, status: 'sending', sequence: LessThan(d.sequence) } });
  }

  private claim(id: string, attempt: number): Promise<boolean> {
    return this.uow.run(async (em) => {
      const result = await em.update(Delivery, { id, status: 'pending' }, { status: 'sending', attempts: attempt, updatedAt: new Date() });
      return (result.affected ?? 0) > 0;
    });
  }

  /** Records the attempt and its consequences in one transaction; returns true when it disabled an endpoint. */
  private record(d: Delivery, attempt: number, result: SendResult, verdict: Verdict, requestHeaders: Record<string, string>): Promise<boolean> {
    return this.uow.run(async (em) => {
      const now = new Date();
      await em.insert(DeliveryAttempt, {
        id: uuidv7(),
        deliveryId: d.id,
        number: attempt,
        startedAt: result.startedAt,
        durationMs: result.durationMs,
        statusCode: result.statusCode ?? null,
        error: result.error ?? (verdict.outcome === 'succeeded' ? null : verdict.reason),
        responseSnippet: result.responseSnippet ?? null,
        requestHeaders,
        outcome: verdict.outcome,
      } as QueryDeepPartialEntity<DeliveryAttempt>);
      const last = { lastStatusCode: result.statusCode ?? null, lastError: verdict.outcome === 'succeeded' ? null : verdict.reason, updatedAt: now };
      if (verdict.outcome === 'retry') {
        const superseded = d.eventType === 'task.progress' && (await this.hasNewer(em, d));
        await em.update(
          Delivery,
          { id: d.id, status: 'sending' },
          superseded
            ? { ...last, status: 'superseded', completedAt: now }
            : { ...last, status: 'pending', nextAttemptAt: new Date(now.getTime() + verdict.delayMs) },
        );
      } else {
        await em.update(Delivery, { id: d.id, status: 'sending' }, { ...last, status: verdict.outcome, completedAt: now });
      }
      return d.target === REQUEST_TARGET ? false : this.recordOnEndpoint(em, d.target, result, verdict, now);
    });
  }

  private async hasNewer(em: EntityManager, d: Delivery): Promise<boolean> {
    if (!d.taskId) return false;
    return em.getRepository(Delivery).exists({ where: { taskId: d.taskId, target: d.target, sequence: MoreThan(d.sequence) } });
  }

  /** Keeps the endpoint's last-delivery summary and failure streak; disables it on 410 or a streak too long. */
  private async recordOnEndpoint(em: EntityManager, endpointId: string, result: SendResult, verdict: Verdict, now: Date): Promise<boolean> {
    const endpoint = await em.findOneBy(Endpoint, { id: endpointId });
    if (!endpoint) return false;
    const ok = verdict.outcome === 'succeeded';
    const failingSince = ok ? null : (endpoint.failingSince ?? now);
    await em.update(Endpoint, { id: endpointId }, { lastDeliveryAt: now, lastStatusCode: result.statusCode ?? null, lastOutcome: verdict.outcome, failingSince });
    if (endpoint.status !== 'enabled' || ok) return false;
    const limit = this.config.endpointDisableAfterHours;
    const reason =
      verdict.outcome === 'failed' && verdict.gone
        ? 'The endpoint answered 410 Gone'
        : failingTooLong(failingSince, now, limit)
          ? `Every delivery failed for ${limit} hours (since ${failingSince!.toISOString()})`
          : undefined;
    if (!reason) return false;
    return this.disable(em, endpoint, reason, now);
  }

  /** Disables an endpoint and tells the tenant's other endpoints that subscribe to `webhook.disabled`. */
  async disable(em: EntityManager, endpoint: Endpoint, reason: string, now = new Date()): Promise<boolean> {
    const result = await em.update(Endpoint, { id: endpoint.id, status: 'enabled' }, { status: 'disabled', disabledReason: reason, disabledAt: now, updatedAt: now });
    if (!result.affected) return false;
    this.logger.warn(`endpoint ${endpoint.id} disabled: ${reason}`);
    const others = await em.find(Endpoint, { where: { tenantId: endpoint.tenantId, status: 'enabled', id: Not(endpoint.id) } });
    await this.planner.planOperational(em, others, 'webhook.disabled', { endpoint_id: endpoint.id, url: endpoint.url, reason, disabled_at: now.toISOString() });
    return true;
  }

  /** Puts a delivery back in line as a new delivery of the same event (same webhook-id, same body). */
  redeliver(tenantId: string, id: string): Promise<Delivery | null> {
    return this.uow.run(async (em) => {
      const original = await em.findOneBy(Delivery, { id, tenantId });
      return original ? this.copy(em, original) : null;
    });
  }

  async copy(em: EntityManager, original: Delivery): Promise<Delivery> {
    const now = new Date();
    const copy = em.create(Delivery, {
      ...original,
      id: uuidv7(),
      status: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      dispatchedAt: null,
      lastStatusCode: null,
      lastError: null,
      createdAt: now,
      updatedAt: now,
      completedAt: null,
    });
    await em.insert(Delivery, copy as QueryDeepPartialEntity<Delivery>);
    return copy;
  }
}
