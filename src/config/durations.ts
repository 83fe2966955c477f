const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration with a unit (`250ms`, `5s`, `1m`, `2h`, `1d`) into milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text);
  if (!match) throw new Error(`"${text}" is not a duration like 250ms, 5s, 1m or 2h`);
  return Math.round(Number(match[1]) * UNIT_MS[match[2]]);
}

/** Parses a comma list of durations, the delays before each attempt: `0s,1m,5m,30m,2h`. */
export function parseSchedule(text: string): number[] {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  if (parts.length === 0) throw new Error('the schedule is empty');
  if (parts.length > 50) throw new Error('the schedule has more than 50 attempts');
  return parts.map(parseDuration);
}

export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
