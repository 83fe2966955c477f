import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { UnitOfWork } from '../database/unit-of-work.js';
import type { Circuit } from './circuit-breaker.js';
import { DeliveryDispatcher } from './delivery-dispatcher.js';
import { DeliveryRepository } from './delivery.repository.js';
import { DeliveryPlanner, freshDelivery } from './delivery-planner.js';
import { Delivery, DeliveryEventType } from './delivery.entity.js';
import type { Endpoint } from './endpoint.entity.js';
import { OutboxRelay } from './outbox-relay.js';
import type { TaskEventEntry } from './payloads.js';

const pick = ({ id, nextAttemptAt, target }: Delivery) => ({ id, nextAttemptAt, target });

/**
 * Delivery's one port. Tasks and endpoints hand it events inside their own transaction (the outbox), and after
 * their commit either hand it the fresh deliveries (`handOver`: sent here at once or queued, no relay round) or
 * tell it that some were written (`kick`: the relay takes them now rather than at its next poll). Everything
 * after — claiming, sending, recording, retrying, endpoint health — happens behind it.
 */
@Injectable()
export class Outbox {
  constructor(
    private readonly planner: DeliveryPlanner,
    private readonly dispatcher: DeliveryDispatcher,
    private readonly relay: OutboxRelay,
    private readonly uow: UnitOfWork,
    private readonly repo: DeliveryRepository,
  ) {}

  /**
   * Deliveries for these task events, written in the caller's transaction. `fresh`: collects the new deliveries
   * (written dispatched) for the caller to hand over after its commit; without it the relay takes them.
   * `endpoints`: the tenants' enabled endpoints, when the caller looked them up already (endpointsOf).
   */
  record(
    em: EntityManager,
    events: readonly TaskEventEntry[],
    fresh?: Delivery[],
    endpoints?: Map<string, Endpoint[]>,
  ): Promise<number> {
    return this.planner.planMany(em, events, fresh, endpoints);
  }

  /** The enabled endpoints of these tenants, by tenant (every event of a tenant is offered to them). */
  endpointsOf(em: EntityManager, tenantIds: Iterable<string>): Promise<Map<string, Endpoint[]>> {
    return this.planner.endpointsOf(em, tenantIds);
  }

  /** After the commit: the fresh deliveries `record` collected go to the dispatcher. */
  handOver(fresh: readonly Delivery[]): void {
    this.dispatcher.dispatch(fresh.map((d) => ({ ...pick(d), inBatches: d.inBatches === true })));
  }

  /** Deliveries were written for the relay (operational events, redeliveries): relay them now. */
  kick(): void {
    this.relay.kick();
  }

  /** An event that belongs to no task (webhook.test), to the given subscribed endpoints, in the caller's transaction. */
  recordOperational(
    em: EntityManager,
    endpoints: Endpoint[],
    type: DeliveryEventType,
    data: unknown,
  ): Promise<Delivery[]> {
    return this.planner.planOperational(em, endpoints, type, data);
  }

  /** Puts a delivery back in line as a new delivery of the same event (same webhook-id, same body), sent alone. */
  async redeliver(tenantId: string, id: string): Promise<Delivery | null> {
    const copy = await this.uow.run(async (em) => {
      const original = await this.repo.findOf(em, tenantId, id);
      return original ? this.copy(em, original, true) : null;
    });
    if (copy) this.kick();
    return copy;
  }

  /** A new delivery of the same event as `original`, in the caller's transaction (kick after the commit). */
  async copy(em: EntityManager, original: Delivery, alone = false): Promise<Delivery> {
    const copy = em.create(Delivery, { ...original, ...freshDelivery(new Date()), sendAlone: alone });
    await this.repo.insert(em, [copy]);
    return copy;
  }

  /**
   * The endpoint started or stopped taking batches: its deliveries not yet sent are handed out again the new way (a
   * job of the old way that comes meanwhile finds them claimed or gives them back: no loss, no double).
   */
  async handOutAgain(em: EntityManager, endpointId: string): Promise<void> {
    await this.repo.undispatch(em, { target: endpointId });
  }

  /** The circuits of these URLs (absent = closed), for the endpoint views. */
  circuitsOf(urls: readonly string[]): Promise<Map<string, Circuit>> {
    return this.repo.circuits(this.repo.reader, urls);
  }
}
