/**
/**
 * A counting semaphore: at most `limit` holders at once, the others waiting in arrival order. Bounds the requests
 * on the wire independently of how many jobs a worker holds; kept over p-limit for the wait it reports to `work`.
 */
export class Semaphore {
  private inside = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** Runs `work` once a place is free, telling it how long it waited for the place (ms). */
  async run<T>(work: (waitedMs: number) => Promise<T>): Promise<T> {
    const arrived = performance.now();
    if (this.inside >= this.limit) await new Promise<void>((enter) => this.queue.push(enter));
    else this.inside++;
    try {
      return await work(performance.now() - arrived);
    } finally {
      // Hand the place straight to the next in line (the count stays), or give it back.
      const next = this.queue.shift();
      if (next) next();
      else this.inside--;
    }
  }

  get waiting(): number {
    return this.queue.length;
  }
}
