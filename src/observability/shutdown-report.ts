/** What a shutdown did with the work this process held, for the one log line it ends with. */
export interface ShutdownReport {
  /** Running generations handed back to the queue; another worker resumes them from their recorded progress. */
  generationHandedBack: number;
  /** Webhook requests that were on the wire when shutdown began and were let finish (their attempts recorded). */
  webhooksFinished: number;
  /** Claimed webhook deliveries not yet sent, given back unsent for the next worker. */
  webhooksGivenBack: number;
  durationMs: number;
}

export function shutdownMessage(r: ShutdownReport): string {
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  return (
    `shutdown: handed back ${plural(r.generationHandedBack, 'generation job', 'generation jobs')}, ` +
    `finished ${plural(r.webhooksFinished, 'webhook request', 'webhook requests')} on the wire, ` +
    `gave back ${plural(r.webhooksGivenBack, 'unsent webhook delivery', 'unsent webhook deliveries')} (${r.durationMs} ms)`
  );
}
