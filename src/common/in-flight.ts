/**
 * Work its caller started and did not wait for, which shutdown must still wait for (attempts recorded behind,
 * deliveries handed over to the queue). The work must handle its own errors: it is awaited here, not caught.
 */
export class InFlight {
  private readonly running = new Set<Promise<unknown>>();

  track(work: Promise<unknown>): void {
    const tracked = work.finally(() => this.running.delete(tracked));
    this.running.add(tracked);
  }

  /** Resolves once nothing tracked is running, including work tracked while waiting. */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
