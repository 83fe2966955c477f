interface Waiting<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit: callers submit one item each and await its own answer, while the items that arrive during a
 * round trip are handled together in the next one. One batch runs at a time, so the batch grows with the load
 * and a single caller waits no longer than one round. A batch that throws is retried item by item, so one bad
 * item fails alone.
 */
export class MicroBatcher<I, O> {
  private waiting: Array<Waiting<I, O>> = [];
  private lanes = 0;

  /** `maxLanes`: how many batches may run at once (1: one after another; more where the store takes them in parallel). */
  constructor(
    private readonly handle: (items: I[]) => Promise<O[]>,
    private readonly maxBatch = 128,
    private readonly maxLanes = 1,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.lanes < this.maxLanes) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.lanes++;
    // Let the callers of this tick join the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        this.settle(batch, await this.handle(batch.map((w) => w.item)));
      } catch (err) {
        if (batch.length === 1) batch[0].reject(err);
        else for (const one of batch) await this.handle([one.item]).then((out) => this.settle([one], out), one.reject);
      }
    }
    this.lanes--;
  }

  private settle(batch: Array<Waiting<I, O>>, outputs: O[]): void {
    batch.forEach((w, i) => w.resolve(outputs[i]));
  }
}
