/** The body of a batch request: the envelopes, in order, as one JSON array. */
export const batchBody = (payloads: readonly string[]): string => `[${payloads.join(',')}]`;

/**
 * The events one batch request takes from the candidates (in their order): up to `maxEvents`, and no more than
 * make a body of `maxBytes` (a larger batch is cut there; one event always goes, however large). `full`: the batch
 * was cut by either bound, so it goes at once rather than wait for more events.
 */
export function fillBatch<T extends { payload: string }>(
  candidates: readonly T[],
  maxEvents: number,
  maxBytes: number,
): { events: T[]; full: boolean } {
  const events: T[] = [];
  // `[` and `]`, then each envelope and a comma before all but the first.
  let bytes = 2;
  for (const c of candidates) {
    if (events.length >= maxEvents) return { events, full: true };
    const size = Buffer.byteLength(c.payload) + (events.length ? 1 : 0);
    if (events.length && bytes + size > maxBytes) return { events, full: true };
    events.push(c);
    bytes += size;
  }
  return { events, full: events.length >= maxEvents };
}

/** When a batch that is not full leaves anyway: once its oldest event has waited `maxWaitMs`. */
export function batchLeavesAt(events: ReadonlyArray<{ createdAt: Date }>, maxWaitMs: number): number {
  return Math.min(...events.map((e) => e.createdAt.getTime())) + maxWaitMs;
}
