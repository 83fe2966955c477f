import { Logger } from '@nestjs/common';

/**
 * Runs `tick` every `intervalMs`, never two at once, until stopped. For sweepers and relays that must keep
 * going when one round fails (database or Redis briefly away).
 */
export class IntervalLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly tick: () => Promise<unknown>,
    private readonly logger = new Logger(name),
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(this.intervalMs);
  }

  /** Runs a round now; if one is running, runs another right after it, so work signalled mid-round is not missed. */
  kick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.tick().catch((err: Error) => this.logger.warn(`${this.name} round failed: ${err.message}`));
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.kick().finally(() => this.schedule(this.intervalMs)), delay);
    this.timer.unref();
  }
}
