/** Whether an endpoint subscribed to `events` receives an event of `type`. Test events always go to their endpoint. */
export function subscribes(events: readonly string[], type: string): boolean {
  return type === 'webhook.test' || events.includes('*') || events.includes(type);
}

/** An endpoint failing without a single success for longer than the limit is disabled. */
export function failingTooLong(failingSince: Date | null, now: Date, limitHours: number): boolean {
  return failingSince !== null && now.getTime() - failingSince.getTime() >= limitHours * 3_600_000;
}

/** The secrets that sign for an endpoint now: the current one, plus the previous one until it expires. */
export function activeSecrets(
  current: string,
  previous: string | null,
  previousExpiresAt: Date | null,
  now: Date,
): string[] {
  return previous && previousExpiresAt && previousExpiresAt.getTime() > now.getTime() ? [current, previous] : [current];
}

export const ROTATION_OVERLAP_MS = 24 * 3_600_000;
