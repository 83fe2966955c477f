import { Injectable } from '@nestjs/common';
import type { Delivery } from './delivery.entity.js';
import type { BatchesDue } from './webhook.queue.js';

export interface HandedOver {
  id: string;
  nextAttemptAt: Date;
}

/** The webhook worker of this process, where it runs one (ROLE=all|worker): it sends just-committed deliveries. */
export interface LocalSender {
  /** How many more deliveries it would take now (0 once it is closing). */
  room(): number;
  /** Takes those it sends; answers the rest. It always takes the ones written already claimed (`sending`). */
  take(deliveries: Delivery[]): Delivery[];
  /** Sends these endpoints' due batches (unless it is closing: then it answers them). */
  takeBatches(endpointIds: string[]): string[];
}

/**
 * From those who commit deliveries to this process's webhook worker and outbox relay: `kick` — deliveries were
 * committed, relay them now rather than at the next poll; `handOver` — these just-committed deliveries (written as
 * dispatched) are sent by this process's worker if it has room, else go straight into the queue, without a relay
 * round; `queue` — into the queue, whatever the room.
 */
@Injectable()
export class OutboxSignal {
  private kicked: (() => void) | undefined;
  private queued: ((deliveries: HandedOver[]) => void) | undefined;
  private queuedBatches: ((due: BatchesDue[]) => void) | undefined;
  private local: LocalSender | undefined;
  private freed: (() => void) | undefined;

  onKick(listener: () => void): void {
    this.kicked = listener;
  }

  onQueue(listener: (deliveries: HandedOver[]) => void): void {
    this.queued = listener;
  }

  onQueueBatches(listener: (due: BatchesDue[]) => void): void {
    this.queuedBatches = listener;
  }

  onRoomFreed(listener: () => void): void {
    this.freed = listener;
  }

  sendHere(sender: LocalSender): void {
    this.local = sender;
  }

  /** How many more deliveries this process's webhook worker would send now; undefined without one here. */
  roomHere(): number | undefined {
    return this.local?.room();
  }

  /** From the webhook worker here: sends finished, so it has room again (the relay may have left it deliveries). */
  roomFreed(): void {
    this.freed?.();
  }

  kick(): void {
    this.kicked?.();
  }

  /**
   * Deliveries just committed as dispatched. Those to an endpoint that takes batches (marked by the planner) are
   * handed on as their endpoint's batches, once per endpoint, not one by one.
   */
  handOver(deliveries: Delivery[]): void {
    if (deliveries.length === 0) return;
    const alone = deliveries.filter((d) => !d.inBatches);
    const batched = [...new Set(deliveries.filter((d) => d.inBatches).map((d) => d.target))];
    if (alone.length) this.queue(this.local ? this.local.take(alone) : alone);
    if (batched.length) this.handOverBatches(batched);
  }

  /** These endpoints have due events in batches: sent by this process's webhook worker, else queued. */
  handOverBatches(endpointIds: string[]): void {
    const rest = this.local ? this.local.takeBatches(endpointIds) : endpointIds;
    this.queueBatches(rest.map((endpointId) => ({ endpointId, nextAttemptAt: new Date() })));
  }

  queueBatches(due: BatchesDue[]): void {
    if (due.length === 0) return;
    this.queuedBatches?.(due);
  }

  queue(deliveries: HandedOver[]): void {
    if (deliveries.length === 0) return;
    // No relay in this process (never the case in a running Herald): the sweeper will find them.
    this.queued?.(deliveries);
  }
}
