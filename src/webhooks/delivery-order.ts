/** What the ordering rule needs to know of a delivery. */
export interface OrderKey {
  id: string;
  taskId: string | null;
  target: string;
  sequence: number;
}

/** The ordering lane of a delivery: its task and target. */
export const laneOf = (d: Pick<OrderKey, 'taskId' | 'target'>) => `${d.taskId}\u0000${d.target}`;

/**
 * Per task and target, events go out in sequence: a delivery waits while an earlier one of the same task to
 * the same target is on the wire (`sending`) or is about to be claimed in the same batch. Returns the ids that
 * must wait. Deliveries without a task (operational events) never wait.
 */
export function mustWait(candidates: readonly OrderKey[], sending: readonly OrderKey[]): Set<string> {
  const lowest = new Map<string, number>();
  for (const d of [...sending, ...candidates]) {
    if (!d.taskId) continue;
    const lane = laneOf(d);
    lowest.set(lane, Math.min(lowest.get(lane) ?? Infinity, d.sequence));
  }
  const wait = new Set<string>();
  for (const d of candidates) if (d.taskId && d.sequence > lowest.get(laneOf(d))!) wait.add(d.id);
  return wait;
}

/**
 * How long each candidate that must wait for its lane waits (ms). While an earlier event of its lane is on the wire,
 * or claimed with it (mustWait): `shortMs`, to look again soon. Else, while an earlier one is still pending (a retry,
 * a hold for an open circuit or a rate limit, or not taken yet; `earlierDue`: by candidate id, when the earliest of
 * those is due, epoch ms): until that one is due, and `shortMs` at least. The others are absent: they may go.
 */
export function laneWaits(
  candidates: readonly OrderKey[],
  sending: readonly OrderKey[],
  earlierDue: ReadonlyMap<string, number>,
  now: number,
  shortMs: number,
): Map<string, number> {
  const waits = new Map<string, number>();
  const busy = mustWait(candidates, sending);
  for (const d of candidates) {
    if (!d.taskId) continue;
    if (busy.has(d.id)) waits.set(d.id, shortMs);
    else if (earlierDue.has(d.id)) waits.set(d.id, Math.max(shortMs, earlierDue.get(d.id)! - now));
  }
  return waits;
}

/** A delivery of a lane that was pending or sending when a round of new events began (DeliveryRepository.openInLanes). */
export interface OpenInLane extends OrderKey {
  status: 'pending' | 'sending';
  eventType: string;
  nextAttemptAt: number;
}

/**
 * What the claim would read of its lanes (DeliveryRepository.claimRows) once a round has written `fresh`, its new
 * pending deliveries, worked out from the lanes as they were before (`before`): the lowest sequence on the wire,
 * and for each fresh delivery when the earlier pending events of its lane come due (epoch ms). The round's own
 * pending rows count, and the pending progress older than a lane's newest event does not, since the round
 * supersedes it (DeliveryRepository.supersedeStaleProgress). For laneWaits, so that a round that claims what it
 * wrote reads nothing after writing it.
 */
export function lanesAfterRound(
  fresh: ReadonlyArray<OrderKey & { nextAttemptAt: Date }>,
  before: readonly OpenInLane[],
): { onWire: OrderKey[]; earlierDue: Map<string, number> } {
  const newest = new Map<string, number>();
  for (const d of fresh) {
    const lane = laneOf(d);
    newest.set(lane, Math.max(newest.get(lane) ?? 0, d.sequence));
  }
  const onWire = before.filter((d) => d.status === 'sending');
  // Each lane's pending rows, by lane once: a round holds hundreds of deliveries, compared lane by lane.
  const pending = new Map<string, Array<{ sequence: number; due: number }>>();
  const add = (lane: string, sequence: number, due: number) => {
    const rows = pending.get(lane);
    if (rows) rows.push({ sequence, due });
    else pending.set(lane, [{ sequence, due }]);
  };
  for (const d of before) {
    const lane = laneOf(d);
    if (d.status === 'pending' && !(d.eventType === 'task.progress' && d.sequence < (newest.get(lane) ?? 0)))
      add(lane, d.sequence, d.nextAttemptAt);
  }
  for (const d of fresh) add(laneOf(d), d.sequence, d.nextAttemptAt.getTime());
  const earlierDue = new Map<string, number>();
  for (const d of fresh) {
    let due = Infinity;
    for (const p of pending.get(laneOf(d))!) if (p.sequence < d.sequence && p.due < due) due = p.due;
    if (due !== Infinity) earlierDue.set(d.id, due);
  }
  return { onWire, earlierDue };
}
