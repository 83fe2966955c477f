import { Injectable } from '@nestjs/common';
import type { Dispatchable } from './delivery.repository.js';
import type { FreshClaim } from './delivery.service.js';
import { LocalSender } from './local-sender.js';
import { WebhookQueue } from './webhook.queue.js';

/**
 * Decides, for deliveries marked dispatched, "send here now, or queue": due ones to this process's webhook worker
 * while it has room, the rest into BullMQ with their delay. Called by the committers (through the Outbox port) and
 * by the relay; it calls only down, to the local sender and the queue.
 */
@Injectable()
export class DeliveryDispatcher {
  constructor(
    private readonly local: LocalSender,
    private readonly queue: WebhookQueue,
  ) {}

  /** `claimed`: deliveries their committer claimed for the local sender (Outbox.record): sent here, always. */
  dispatch(deliveries: readonly Dispatchable[], now = Date.now(), claimed: readonly FreshClaim[] = []): void {
    for (const claim of claimed) this.local.takeClaimed(claim);
    if (deliveries.length === 0) return;
    const queued: Dispatchable[] = [];
    const batches = new Map<string, Date>();
    for (const d of deliveries) {
      if (d.inBatches) {
        const first = batches.get(d.target);
        if (!first || first > d.nextAttemptAt) batches.set(d.target, d.nextAttemptAt);
      } else if (d.nextAttemptAt.getTime() > now || !this.local.take(d.id)) queued.push(d);
    }
    this.queue.add(queued);
    this.queue.addBatches(
      [...batches]
        .filter(([endpointId, at]) => at.getTime() > now || !this.local.takeBatches(endpointId))
        .map(([endpointId, nextAttemptAt]) => ({ endpointId, nextAttemptAt })),
    );
  }

  /** How many more deliveries this process would send here now; undefined where no webhook worker runs. */
  room(): number | undefined {
    return this.local.room();
  }

  /** Resolves once this process could send this many more here. */
  roomFor(room: number): Promise<void> {
    return this.local.roomFor(room);
  }
}
