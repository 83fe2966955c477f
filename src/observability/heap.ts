import v8 from 'node:v8';

/**
 * The V8 flag that bounds heap growth. After each full collection V8 lets the heap grow to a multiple of what
 * survived — up to 4× when it judges memory plentiful (on a 24 GiB machine it does). Herald's live data is small and
 * its garbage plentiful (a webhook's payload, headers and attempt row die within milliseconds), so draining a
 * backlog ballooned RSS to ~330 MB of garbage. Capping growth at 2.5× (150 %) keeps a 100,000-delivery drain near
 * 260 MB at the same rate; 2× saved no more RSS there and cost creates ~4 ms of p99 in more frequent full
 * collections (docs/BENCHMARKS.md, finding 22). Unlike --max-old-space-size it sets no ceiling: a process that
 * needs more live memory still gets it.
 */
export function heapGrowingFlag(percent: number): string | undefined {
  return percent > 0 ? `--heap-growing-percent=${percent}` : undefined;
}

/**
 * Applies HEAP_GROWING_PERCENT to this process. NODE_OPTIONS does not accept this V8 flag, so it is set at start;
 * V8 reads it at each full collection, so setting it after the heap exists is safe.
 */
export function applyHeapGrowing(percent: number): void {
  const flag = heapGrowingFlag(percent);
  if (flag) v8.setFlagsFromString(flag);
}
