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

/**
 * Up to `count` batch requests at once from the candidates (in their order), each filled as fillBatch fills one.
 * Batches on the wire together may arrive in any order, so a task's events stay in one of them: an event whose task
 * has an event in an earlier batch of these is left for a later claim (it goes once that batch is recorded).
 * `full`: whether the last batch is full (only the last may not be).
 */
export function fillBatches<T extends { payload: string; taskId: string | null }>(
  candidates: readonly T[],
  count: number,
  maxEvents: number,
  maxBytes: number,
): { batches: T[][]; full: boolean } {
  const batches: T[][] = [];
  const inEarlier = new Set<string>();
  let rest = candidates;
  let full = true;
  while (batches.length < count && full) {
    const { events, full: cut } = fillBatch(
      rest.filter((c) => c.taskId === null || !inEarlier.has(c.taskId)),
      maxEvents,
      maxBytes,
    );
    if (events.length === 0) break;
    batches.push(events);
    full = cut;
    const taken = new Set(events);
    for (const e of events) if (e.taskId !== null) inEarlier.add(e.taskId);
    rest = rest.filter((c) => !taken.has(c));
  }
  return { batches, full };
}

/** When a batch that is not full leaves anyway: once its oldest event has waited `maxWaitMs`. */
export function batchLeavesAt(events: ReadonlyArray<{ createdAt: Date }>, maxWaitMs: number): number {
  return Math.min(...events.map((e) => e.createdAt.getTime())) + maxWaitMs;
}
