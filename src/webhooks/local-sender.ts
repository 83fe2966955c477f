import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { InFlight } from '../common/in-flight.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { DeliveryService, type FreshClaim } from './delivery.service.js';
import { WebhookQueue } from './webhook.queue.js';

// A delivery sent here whose claim or record the database refused goes to the queue after this long.
const REFUSED_RETRY_MS = 1_000;

export const JOBS_PER_SEND_SLOT = 2;

/**
 * How many deliveries a webhook worker holds at once, as BullMQ jobs and as local sends alike: more than may be on
 * the wire, because a send spends most of its time waiting for its claim in the ledger's next round, and at least
 * enough to fill the ledger's rounds (docs/BENCHMARKS.md, finding 23). A claim that waits long for the wire is
 * confirmed before it is sent (DeliveryService), so holding many is safe with slow receivers too.
 */
export function deliveriesHeld(config: HeraldConfig, ledgerCapacity: number): number {
  return Math.max(JOBS_PER_SEND_SLOT * config.webhook.concurrency, ledgerCapacity);
}

/**
 * This process's webhook worker (ROLE=all|worker) sending due first attempts without a BullMQ job: a job's add,
 * pick-up and finish in Redis cost about a fifth of a webhook's CPU and, on a busy process, most of the time from
 * event to receipt. Only the first try goes so: a retry or an ordering wait goes into the queue with its delay.
 * Should the process die first, the sweeper finds the delivery (dispatched, not in Redis; or left sending).
 */
@Injectable()
export class LocalSender implements BeforeApplicationShutdown {
  private readonly logger = new Logger('WebhookWorker');
  private readonly sending = new InFlight();
  private count = 0;
  private closing: boolean;
  private readonly capacity: number;
  // Endpoints whose batches are being sent here now; and those handed over again meanwhile.
  private readonly batchRuns = new Set<string>();
  private readonly batchAgain = new Set<string>();
  // Those waiting for this much room (the relay, when it left due deliveries for want of it).
  private waiters: Array<{ room: number; resolve: () => void }> = [];

  constructor(
    private readonly deliveries: DeliveryService,
    private readonly queue: WebhookQueue,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.closing = config.role === 'api';
    this.capacity = deliveriesHeld(config, deliveries.ledgerCapacity);
  }

  /** How many more deliveries it would send now (0 once closing); undefined where no webhook worker runs. */
  room(): number | undefined {
    if (this.config.role === 'api') return undefined;
    return this.closing ? 0 : Math.max(0, this.capacity - this.count);
  }

  /** Resolves once it has at least this much room (or is closing: then nothing more comes to it). */
  roomFor(room: number): Promise<void> {
    if (this.closing || (this.room() ?? 0) >= room) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ room, resolve }));
  }

  /** Sends this due delivery here if it has room; false if not (the caller queues it). */
  take(deliveryId: string): boolean {
    if ((this.room() ?? 0) === 0) return false;
    this.sending.track(this.send(deliveryId));
    return true;
  }

  /** Sends a delivery claimed for it in its committer's transaction (Outbox.record asked for room first). */
  takeClaimed(claim: FreshClaim): void {
    this.sending.track(this.send(claim.delivery.id, claim));
  }

  /** Sends this endpoint's due batches here (one run per endpoint at a time); false when closing. */
  takeBatches(endpointId: string): boolean {
    if (this.closing) return false;
    if (this.batchRuns.has(endpointId)) this.batchAgain.add(endpointId);
    else this.sending.track(this.runBatches(endpointId));
    return true;
  }

  private async send(deliveryId: string, claim?: FreshClaim): Promise<void> {
    this.count++;
    try {
      const run = claim ? await this.deliveries.deliverClaimed(claim) : await this.deliveries.deliver(deliveryId);
      if (run.outcome === 'retry' || run.outcome === 'wait')
        this.queue.add([{ id: deliveryId, nextAttemptAt: new Date(Date.now() + run.delayMs) }]);
    } catch (err) {
      // The database refused the claim or the record: the queue tries again, as it would a job that threw.
      this.logger.warn(`delivery ${deliveryId} goes to the queue: ${(err as Error).message}`);
      this.queue.add([{ id: deliveryId, nextAttemptAt: new Date(Date.now() + REFUSED_RETRY_MS) }]);
    } finally {
      this.count--;
      this.wakeWaiters();
    }
  }

  /** One endpoint's batches until none can go now; then its batch job, delayed until one can. */
  private async runBatches(endpointId: string): Promise<void> {
    this.batchRuns.add(endpointId);
    try {
      for (;;) {
        this.batchAgain.delete(endpointId);
        const next = await this.deliveries.deliverBatches(endpointId);
        if (this.batchAgain.has(endpointId) && !this.closing) continue;
        if (next !== undefined) this.queue.addBatches([{ endpointId, nextAttemptAt: new Date(Date.now() + next) }]);
        return;
      }
    } catch (err) {
      this.logger.warn(`batches of endpoint ${endpointId} go to the queue: ${(err as Error).message}`);
      this.queue.addBatches([{ endpointId, nextAttemptAt: new Date(Date.now() + REFUSED_RETRY_MS) }]);
    } finally {
      this.batchRuns.delete(endpointId);
    }
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    const room = this.closing ? Infinity : (this.room() ?? 0);
    const ready = this.waiters.filter((w) => w.room <= room);
    this.waiters = this.waiters.filter((w) => w.room > room);
    for (const w of ready) w.resolve();
  }

  /**
   * Before anything closes: claims still waiting for the wire are given back, the sends on the wire finish, and
   * their attempts are committed, so a clean shutdown leaves nothing `sending`.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.config.role === 'api') return;
    this.deliveries.stopSending();
    this.closing = true;
    this.wakeWaiters();
    await this.sending.settled();
    await this.deliveries.settled();
  }
}
