import { Injectable } from '@nestjs/common';

/** Tells this process's outbox relay that deliveries were just committed, so it need not wait for its next poll. */
@Injectable()
export class OutboxSignal {
  private listener: (() => void) | undefined;

  onKick(listener: () => void): void {
    this.listener = listener;
  }

  kick(): void {
    this.listener?.();
  }
}
