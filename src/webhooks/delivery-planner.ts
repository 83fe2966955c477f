import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { v7 as uuidv7 } from 'uuid';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { parseDuration } from '../config/durations.js';
import type { TaskEvent } from '../tasks/task-event.entity.js';
import type { Task } from '../tasks/task.entity.js';
import { Endpoint } from '../endpoints/endpoint.entity.js';
import { subscribes } from '../endpoints/endpoint-rules.js';
import { envelope } from '../endpoints/event-catalogue.js';
import { taskView } from '../tasks/task-view.js';
import { Delivery, DeliveryEventType, REQUEST_TARGET } from './delivery.entity.js';
import { conduitPayload, EventFacts, requestEventName, serializePayload } from './payloads.js';
import { effectiveSchedule } from './retry-policy.js';

export function eventFacts(task: Task, event: TaskEvent): EventFacts {
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
 * Turns a task event into deliveries, inside the transaction that wrote the event (the outbox). A newer
 * delivery to a target supersedes that target's progress deliveries not yet sent.
 */
@Injectable()
export class DeliveryPlanner {
  constructor(@Inject(CONFIG) private readonly config: HeraldConfig) {}

  /** Deliveries for one task event: the task's webhook_url (Conduit payload) and each subscribed endpoint (envelope). */
  async plan(em: EntityManager, task: Task, event: TaskEvent): Promise<number> {
    const toRequest = await this.planRequest(em, task, event);
    const endpoints = await em.find(Endpoint, { where: { tenantId: task.tenantId, status: 'enabled' } });
    const subscribed = endpoints.filter((e) => subscribes(e.events, event.type));
    if (subscribed.length === 0) return toRequest;
    const payload = envelope(event.id, event.type, event.createdAt, taskView(task, this.config.publicBaseUrl));
    for (const endpoint of subscribed) {
      await this.supersedeStaleProgress(em, task.id, endpoint.id, event.sequence);
      await this.insert(em, this.toEndpoint(endpoint, { taskId: task.id, eventId: event.id, eventType: event.type, sequence: event.sequence, payload }));
    }
    return toRequest + subscribed.length;
  }

  /** An event that belongs to no task (webhook.test, webhook.disabled), to the given subscribed endpoints. */
  async planOperational(em: EntityManager, endpoints: Endpoint[], type: DeliveryEventType, data: unknown): Promise<Delivery[]> {
    const eventId = uuidv7();
    const payload = envelope(eventId, type, new Date(), data);
    const planned: Delivery[] = [];
    for (const endpoint of endpoints.filter((e) => subscribes(e.events, type))) {
      planned.push(await this.insert(em, this.toEndpoint(endpoint, { taskId: null, eventId, eventType: type, sequence: 0, payload })));
    }
    return planned;
  }

  private toEndpoint(endpoint: Endpoint, event: Pick<Delivery, 'taskId' | 'eventId' | 'eventType' | 'sequence' | 'payload'>) {
    return {
      ...event,
      tenantId: endpoint.tenantId,
      target: endpoint.id,
      url: endpoint.url,
      headersSealed: endpoint.headersSealed,
      schedule: [...this.config.webhook.retrySchedule],
    };
  }

  private async planRequest(em: EntityManager, task: Task, event: TaskEvent): Promise<number> {
    if (!task.webhookUrl) return 0;
    const name = requestEventName(event.type);
    if (!name || (task.webhookEvents && !task.webhookEvents.includes(name))) return 0;
    const payload = conduitPayload(eventFacts(task, event));
    if (!payload) return 0;
    const retry = task.webhookRetry
      ? { max_attempts: task.webhookRetry.max_attempts, schedule: task.webhookRetry.schedule?.map(parseDuration) }
      : null;
    await this.supersedeStaleProgress(em, task.id, REQUEST_TARGET, event.sequence);
    await this.insert(em, {
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
    });
    return 1;
  }

  async insert(em: EntityManager, d: Pick<Delivery, 'tenantId' | 'taskId' | 'eventId' | 'eventType' | 'sequence' | 'target' | 'url' | 'headersSealed' | 'payload' | 'schedule'>): Promise<Delivery> {
    const now = new Date();
    const row = em.create(Delivery, {
      ...d,
      id: uuidv7(),
      status: 'pending',
      attempts: 0,
      nextAttemptAt: new Date(now.getTime() + (d.schedule[0] ?? 0)),
      dispatchedAt: null,
      lastStatusCode: null,
      lastError: null,
      createdAt: now,
      updatedAt: now,
      completedAt: null,
    });
    await em.insert(Delivery, row as QueryDeepPartialEntity<Delivery>);
    return row;
  }

  /** Progress not yet sent is worthless once a newer event for the same target exists. */
  async supersedeStaleProgress(em: EntityManager, taskId: string, target: string, newerSequence: number): Promise<void> {
    const now = new Date();
    await em
      .createQueryBuilder()
      .update(Delivery)
      .set({ status: 'superseded', updatedAt: now, completedAt: now, lastError: `superseded by event ${newerSequence}` })
      .where("task_id = :taskId AND target = :target AND event_type = 'task.progress' AND status = 'pending' AND sequence < :newerSequence", {
        taskId,
        target,
        newerSequence,
      })
      .execute();
  }
}
