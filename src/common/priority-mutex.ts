/**
 * A mutex with two priorities. Work that must run one piece at a time (SQLite's one connection), first come first served, except that urgent
 * work goes ahead of ordinary work waiting — but never twice in a row while ordinary work waits, so neither starves.
 */
export class PriorityMutex {
  private readonly urgent: Array<() => void> = [];
  private readonly ordinary: Array<() => void> = [];
  private running = false;
  private lastWasUrgent = false;

  /** `onIdle`: called whenever the last piece of work waiting has finished. */
  constructor(private readonly onIdle?: () => void) {}

  run<T>(work: () => Promise<T>, urgent = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      (urgent ? this.urgent : this.ordinary).push(() => {
        void (async () => work())()
          .then(resolve, reject)
          .finally(() => this.next());
      });
      if (!this.running) this.next();
    });
  }

  /** Whether work is running now. */
  get busy(): boolean {
    return this.running;
  }

  /** Whether work is waiting for its turn (the running one not counted). */
  get waiting(): boolean {
    return this.urgent.length + this.ordinary.length > 0;
  }

  private next(): void {
    const takeUrgent = this.urgent.length > 0 && (!this.lastWasUrgent || this.ordinary.length === 0);
    const turn = takeUrgent ? this.urgent.shift() : this.ordinary.shift();
    this.running = turn !== undefined;
    this.lastWasUrgent = takeUrgent;
    if (turn) turn();
    else this.onIdle?.();
  }
}
