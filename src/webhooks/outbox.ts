import { Inject, Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import type { Circuit } from './circuit-breaker.js';
import { DeliveryDispatcher } from './delivery-dispatcher.js';
import { DeliveryRepository, INSERT_CHUNK } from './delivery.repository.js';
import { DeliveryService, type FreshClaim } from './delivery.service.js';
import { DeliveryPlanner, freshDelivery } from './delivery-planner.js';
import { Delivery, DeliveryEventType, REQUEST_TARGET } from './delivery.entity.js';
import type { Endpoint } from './endpoint.entity.js';
import { OutboxRelay } from './outbox-relay.js';
import type { TaskEventEntry } from './payloads.js';

/** A round's lanes before it writes (Outbox.openLanes). */
export type OpenLanes = Awaited<ReturnType<DeliveryRepository['openInLanes']>>;

const pick = ({ id, nextAttemptAt, target }: Delivery) => ({ id, nextAttemptAt, target });

/**
 * Delivery's one port. Tasks and endpoints hand it events inside their own transaction (the outbox), and after
 * their commit either hand it the fresh deliveries (`handOver`: sent here at once or queued, no relay round) or
 * tell it that some were written (`kick`: the relay takes them now rather than at its next poll). Everything
 * after — claiming, sending, recording, retrying, endpoint health — happens behind it.
 */
@Injectable()
export class Outbox {
  // Fresh deliveries claimed in their committer's transaction (by row object: a rolled-back round's are dropped).
  private readonly claims = new WeakMap<Delivery, FreshClaim>();

  constructor(
    private readonly planner: DeliveryPlanner,
    private readonly dispatcher: DeliveryDispatcher,
    private readonly relay: OutboxRelay,
    private readonly uow: UnitOfWork,
    private readonly repo: DeliveryRepository,
    private readonly deliveries: DeliveryService,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /**
   * Deliveries for these task events, written in the caller's transaction. `fresh`: collects the new deliveries
   * (written dispatched) for the caller to hand over after its commit; without it the relay takes them.
   * `endpoints`: the tenants' enabled endpoints, when the caller looked them up already (endpointsOf). `lanes`: the
   * events' lanes as the transaction read them before writing (openLanes, SQLite); then nothing is read after the
   * writes: the deliveries, the superseding and the claims of the fresh ones all go with the COMMIT.
   */
  async record(
    em: EntityManager,
    events: readonly TaskEventEntry[],
    fresh?: Delivery[],
    endpoints?: Map<string, Endpoint[]>,
    lanes?: OpenLanes,
  ): Promise<number> {
    const before = fresh?.length ?? 0;
    const planned = await this.planner.planMany(em, events, fresh, endpoints, { atCommit: lanes !== undefined });
    if (fresh) await this.claimForHere(em, fresh.slice(before), lanes);
    return planned;
  }

  /**
   * What `record` needs to claim, with nothing read after its writes, the fresh deliveries of these tasks: their
   * webhook_url deliveries pending or sending, and which webhook_urls have a circuit. Read in the transaction
   * before its events are written, alongside other statements (SQLite: its write lock keeps them as read).
   */
  openLanes(em: EntityManager, taskIds: readonly string[]): Promise<OpenLanes> {
    return this.repo.openInLanes(em, taskIds);
  }

  /** openLanes for tasks this transaction creates: no deliveries yet, so only their webhook_urls' circuits. */
  async lanesOfNew(em: EntityManager, webhookUrls: readonly string[]): Promise<OpenLanes> {
    return { open: [], circuitUrls: new Set((await this.repo.circuits(em, webhookUrls)).keys()) };
  }

  /**
   * Claims, in the committer's transaction, the fresh webhook_url deliveries due now that this process's webhook
   * worker has room for, so that each is sent right after the commit without a ledger round. Endpoint deliveries
   * (rate limits ask Redis, batches go per endpoint) and a host rate limit take the ledger's claim after the commit.
   */
  private async claimForHere(em: EntityManager, rows: readonly Delivery[], lanes?: OpenLanes): Promise<void> {
    if (this.config.webhook.hostRateLimitPerSecond) return;
    const room = Math.min(this.dispatcher.room() ?? 0, INSERT_CHUNK);
    const now = Date.now();
    const due = rows
      .filter((d) => d.target === REQUEST_TARGET && d.taskId && d.nextAttemptAt.getTime() <= now)
      .slice(0, room);
    if (due.length === 0) return;
    const byId = new Map(due.map((d) => [d.id, d]));
    // A URL with a circuit may need its probe taken or its deliveries held: the claim reads the rows then.
    const written =
      lanes && !due.some((d) => lanes.circuitUrls.has(d.url))
        ? { fresh: rows.filter((d) => d.target === REQUEST_TARGET && d.taskId), open: lanes.open }
        : undefined;
    for (const claim of await this.deliveries.claimFresh(em, due, written))
      this.claims.set(byId.get(claim.delivery.id)!, claim);
  }

  /** The enabled endpoints of these tenants, by tenant (every event of a tenant is offered to them). */
  endpointsOf(em: EntityManager, tenantIds: Iterable<string>): Promise<Map<string, Endpoint[]>> {
    return this.planner.endpointsOf(em, tenantIds);
  }

  /** After the commit: the fresh deliveries `record` collected go to the dispatcher. */
  handOver(fresh: readonly Delivery[]): void {
    const claimed = fresh.flatMap((d) => this.claims.get(d) ?? []);
    const rest = fresh.filter((d) => !this.claims.has(d));
    this.dispatcher.dispatch(
      rest.map((d) => ({ ...pick(d), inBatches: d.inBatches === true })),
      Date.now(),
      claimed,
    );
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
