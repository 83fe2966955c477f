/**
 * Ticks for a count axis from 0: a round step (1, 2 or 5 × 10ⁿ, never below 1 since counts are whole) giving
 * about `intervals` intervals, ending at the first tick at or above `max`.
 */
export function countTicks(max: number, intervals = 4): number[] {
  const top = Math.max(1, Math.ceil(max));
  const rough = top / intervals;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = Math.max(
    1,
    [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough)!,
  );
  const ticks = [0];
  while (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

/**
 * Which minutes of a per-minute series get a time label: those on a round minute of the local hour (every 5, 10,
 * 15, 20 or 30 minutes), the finest spacing that leaves `minGap` pixels between labels.
 */
export function minuteTicks(minutes: string[], pxPerMinute: number, minGap = 56): number[] {
  const every = [5, 10, 15, 20, 30].find((m) => m * pxPerMinute >= minGap) ?? 60;
  return minutes.flatMap((iso, i) => (new Date(iso).getMinutes() % every === 0 ? [i] : []));
}
