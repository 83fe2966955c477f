import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { parseDuration } from '../config/durations.js';
import { together } from '../database/sql.js';
import { DeliveryRepository } from './delivery.repository.js';
import { Endpoint } from './endpoint.entity.js';
import { subscribes } from './endpoint-rules.js';
import { envelope } from '../events/event-catalogue.js';
import { laneOf } from './delivery-order.js';
import { Delivery, DeliveryEventType, REQUEST_TARGET } from './delivery.entity.js';
import {
  conduitPayload,
  EventFacts,
  requestEventName,
  serializePayload,
  type TaskEventEntry,
  type TaskFacts,
} from './payloads.js';
import { effectiveSchedule } from './retry-policy.js';

type Planned = Pick<
  Delivery,
  | 'tenantId'
  | 'taskId'
  | 'eventId'
  | 'eventType'
  | 'sequence'
  | 'target'
  | 'url'
  | 'headersSealed'
  | 'payload'
  | 'schedule'
  | 'inBatches'
>;

export function eventFacts(task: TaskFacts, event: TaskEventEntry['event']): EventFacts {
  return {
    eventId: event.id,
    type: event.type,
    sequence: event.sequence,
    createdAt: event.createdAt,
    task: {
      id: task.id,
      kind: task.kind,
      status: task.status,
      progress: task.progress,
      message: task.message,
      model: task.model,
      prompt: task.prompt,
      error: task.error,
      result: task.result,
      metadata: task.metadata,
      startedAt: task.startedAt,
      completedAt: task.completedAt,
      estimatedDurationMs: task.estimatedDurationMs,
    },
  };
}

/**
 * Within one batch of new deliveries: the progress ones that a newer event of the same task to the same target,
 * also in the batch, makes worthless. Answers index → the newer sequence.
 */
export function supersededInBatch(
  rows: ReadonlyArray<Pick<Delivery, 'taskId' | 'target' | 'sequence' | 'eventType'>>,
): Map<number, number> {
  const newest = new Map<string, number>();
  for (const r of rows) if (r.taskId) newest.set(laneOf(r), Math.max(newest.get(laneOf(r)) ?? -1, r.sequence));
  const superseded = new Map<number, number>();
  rows.forEach((r, i) => {
    const top = r.taskId ? newest.get(laneOf(r))! : -1;
    if (r.eventType === 'task.progress' && top > r.sequence) superseded.set(i, top);
  });
  return superseded;
}

/** The state every new delivery starts in: a planned one, or a redelivery of an old one (same event, new row). */
export function freshDelivery(now: Date, firstDelayMs = 0) {
  return {
    id: uuidv7(),
    status: 'pending' as const,
    attempts: 0,
    nextAttemptAt: new Date(now.getTime() + firstDelayMs),
    dispatchedAt: null,
    lastStatusCode: null,
    lastError: null,
    batchId: null,
    sendAlone: false,
    createdAt: now,
    updatedAt: now,
    completedAt: null,
  };
}

/**
 * Turns a task event into deliveries, inside the transaction that wrote the event (the outbox). A newer
 * delivery to a target supersedes that target's progress deliveries not yet sent.
 */
@Injectable()
export class DeliveryPlanner {
  constructor(
    private readonly repo: DeliveryRepository,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /** Deliveries for one task event: the task's webhook_url (Conduit payload) and each subscribed endpoint (envelope). */
  plan(em: EntityManager, entry: TaskEventEntry): Promise<number> {
    return this.planMany(em, [entry]);
  }

  /** The enabled endpoints of these tenants, by tenant: every event of a tenant is offered to its endpoints. */
  async endpointsOf(em: EntityManager, tenantIds: Iterable<string>): Promise<Map<string, Endpoint[]>> {
    const ids = [...new Set(tenantIds)];
    const byTenant = new Map<string, Endpoint[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return byTenant;
    for (const e of await this.repo.enabledEndpoints(em, ids)) byTenant.get(e.tenantId)!.push(e);
    return byTenant;
  }

  /**
   * Deliveries for several task events written in one transaction: one endpoint lookup (unless the caller made
   * it: `endpoints`) and one multi-row INSERT, so a batch of creates or transitions costs a few
   * statements, not a few per event. `atCommit`: the rows and the superseding go with the COMMIT (writeAtCommit;
   * the caller reads neither after).
   */
  async planMany(
    em: EntityManager,
    events: readonly TaskEventEntry[],
    handOver?: Delivery[],
    endpoints?: Map<string, Endpoint[]>,
    { atCommit = false } = {},
  ): Promise<number> {
    const endpointsOf =
      endpoints ??
      (await this.endpointsOf(
        em,
        events.map((e) => e.task.tenantId),
      ));
    const rows: Planned[] = [];
    // Per task and target, the newest event of this batch supersedes the earlier progress not yet sent.
    const newest = new Map<string, { taskId: string; target: string; sequence: number }>();
    for (const { task, event, snapshot } of events) {
      const toRequest = this.requestDelivery(task, event);
      const subscribed = endpointsOf.get(task.tenantId)!.filter((e) => subscribes(e.events, event.type));
      const targets = [...(toRequest ? [REQUEST_TARGET] : []), ...subscribed.map((e) => e.id)];
      // Only a task's first event (sequence 1) can have no earlier progress to supersede.
      if (event.sequence > 1) {
        for (const target of targets) {
          const lane = laneOf({ taskId: task.id, target });
          if ((newest.get(lane)?.sequence ?? 0) < event.sequence)
            newest.set(lane, { taskId: task.id, target, sequence: event.sequence });
        }
      }
      if (toRequest) rows.push(toRequest);
      if (subscribed.length === 0) continue;
      const payload = envelope(event.id, event.type, event.createdAt, snapshot());
      for (const endpoint of subscribed)
        rows.push(
          this.toEndpoint(endpoint, {
            taskId: task.id,
            eventId: event.id,
            eventType: event.type,
            sequence: event.sequence,
            payload,
          }),
        );
    }
    // Different rows (the new ones are superseded in the batch already): sent together.
    let inserted: Delivery[] = [];
    const inserting = async () =>
      void (inserted = await this.insertMany(em, rows, handOver !== undefined, { atCommit }));
    await together(em, [inserting, () => this.repo.supersedeStaleProgress(em, [...newest.values()], { atCommit })]);
    handOver?.push(...inserted.filter((d) => d.status === 'pending'));
    return rows.length;
  }

  /** An event that belongs to no task (webhook.test, webhook.disabled), to the given subscribed endpoints. */
  async planOperational(
    em: EntityManager,
    endpoints: Endpoint[],
    type: DeliveryEventType,
    data: unknown,
  ): Promise<Delivery[]> {
    const eventId = uuidv7();
    const payload = envelope(eventId, type, new Date(), data);
    const planned: Delivery[] = [];
    for (const endpoint of endpoints.filter((e) => subscribes(e.events, type))) {
      planned.push(
        await this.insert(
          em,
          this.toEndpoint(endpoint, { taskId: null, eventId, eventType: type, sequence: 0, payload }),
        ),
      );
    }
    return planned;
  }

  private toEndpoint(
    endpoint: Endpoint,
    event: Pick<Delivery, 'taskId' | 'eventId' | 'eventType' | 'sequence' | 'payload'>,
  ) {
    return {
      ...event,
      tenantId: endpoint.tenantId,
      target: endpoint.id,
      url: endpoint.url,
      headersSealed: endpoint.headersSealed,
      schedule: [...this.config.webhook.retrySchedule],
      inBatches: !!endpoint.batchMaxEvents,
    };
  }

  private requestDelivery(task: TaskFacts, event: TaskEventEntry['event']): Planned | null {
    if (!task.webhookUrl) return null;
    const name = requestEventName(event.type);
    if (!name || (task.webhookEvents && !task.webhookEvents.includes(name))) return null;
    const payload = conduitPayload(eventFacts(task, event));
    if (!payload) return null;
    const retry = task.webhookRetry
      ? { max_attempts: task.webhookRetry.max_attempts, schedule: task.webhookRetry.schedule?.map(parseDuration) }
      : null;
    return {
      tenantId: task.tenantId,
      taskId: task.id,
      eventId: event.id,
      eventType: event.type,
      sequence: event.sequence,
      target: REQUEST_TARGET,
      url: task.webhookUrl,
      headersSealed: task.webhookHeadersSealed,
      payload: serializePayload(payload),
      schedule: effectiveSchedule(this.config.webhook.retrySchedule, retry),
    };
  }

  async insert(em: EntityManager, d: Planned): Promise<Delivery> {
    return (await this.insertMany(em, [d]))[0];
  }

  /**
   * Outbox rows. `handedOver`: the committing caller hands them to the dispatcher itself right after its commit
   * (Outbox.handOver), so they are written as dispatched and the relay skips them; were the process to die in
   * between, the sweeper finds them (due, dispatched, not in Redis) and hands them back.
   */
  async insertMany(
    em: EntityManager,
    planned: readonly Planned[],
    handedOver = false,
    { atCommit = false } = {},
  ): Promise<Delivery[]> {
    const now = new Date();
    // Built directly rather than by em.create, which walks the entity's metadata for every row (a round writes
    // hundreds); the properties are the same: Planned's, then a fresh delivery's.
    const rows = planned.map((d) => {
      const row: Delivery = Object.assign(new Delivery(), d, freshDelivery(now, d.schedule[0] ?? 0));
      if (handedOver) row.dispatchedAt = now;
      return row;
    });
    // Progress overtaken within this same batch is born superseded (supersedeStaleProgress covers earlier rows).
    for (const [i, newer] of supersededInBatch(rows))
      Object.assign(rows[i], { status: 'superseded', completedAt: now, lastError: `superseded by event ${newer}` });
    await this.repo.insert(em, rows, { atCommit });
    return rows;
  }
}
