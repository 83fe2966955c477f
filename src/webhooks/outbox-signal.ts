import { Injectable } from '@nestjs/common';

export interface HandedOver {
  id: string;
  nextAttemptAt: Date;
}

/**
 * From those who commit deliveries to this process's outbox relay: `kick` — deliveries were committed, relay them
 * now rather than at the next poll; `handOver` — these just-committed deliveries (written as dispatched) go
 * straight into the queue, without a relay round.
 */
@Injectable()
export class OutboxSignal {
  private kicked: (() => void) | undefined;
  private handed: ((deliveries: HandedOver[]) => void) | undefined;

  onKick(listener: () => void): void {
    this.kicked = listener;
  }

  onHandOver(listener: (deliveries: HandedOver[]) => void): void {
    this.handed = listener;
  }

  kick(): void {
    this.kicked?.();
  }

  handOver(deliveries: HandedOver[]): void {
    if (deliveries.length === 0) return;
    // No relay in this process (never the case in a running Herald): the sweeper will find them.
    this.handed?.(deliveries);
  }
}
