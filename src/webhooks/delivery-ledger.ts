import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { v7 as uuidv7 } from 'uuid';
import { MicroBatcher } from '../common/micro-batcher.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { entityFromRow, together } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { Metrics } from '../observability/metrics.js';
import { batchLeavesAt, fillBatches } from './batch-rules.js';
import { admit, afterAttempt, Circuit, CircuitSettings, CLOSED, isTargetFailure } from './circuit-breaker.js';
import { lanesAfterRound, laneWaits, type OpenInLane, type OrderKey } from './delivery-order.js';
import { Delivery, DeliveryAttempt, REQUEST_TARGET } from './delivery.entity.js';
import { ClaimRow, DeliveryRepository } from './delivery.repository.js';
import { EndpointHealth } from './endpoint-health.js';
import { activeSecrets } from './endpoint-rules.js';
import { Endpoint } from './endpoint.entity.js';
import { DeliveryRateLimits, RateBucket, rateBuckets } from './rate-limits.js';
import { isPermanentError, Verdict } from './retry-policy.js';
import { SendResult } from './webhook-sender.js';

// Claims and records that one ledger round takes at most.
const LEDGER_ROUND_ITEMS = 128;
// When an earlier delivery to the same target is on the wire, a later one waits this long and looks again.
export const ORDER_WAIT_MS = 20;
// Events of a batching endpoint that are due but behind an earlier event of their task elsewhere look again then.
const BLOCKED_BATCH_WAIT_MS = 50;

export type Claim =
  // notBefore: the rate-limit slot it was claimed for (epoch ms): it is sent when that comes.
  // rate: its rate-limit buckets, which its send is spaced to (DeliveryRateLimits.spaceOut).
  | {
      kind: 'claimed';
      delivery: Delivery;
      attempt: number;
      secrets?: () => string[];
      batch?: Delivery[];
      notBefore?: number;
      rate?: RateBucket[];
    }
  // toRelay: handed back to the relay, to go the other way (its endpoint started or stopped taking batches).
  | { kind: 'skipped'; toRelay?: boolean }
  // No batch to go now; nextInMs: when one could (undefined: nothing pending).
  | { kind: 'none'; nextInMs?: number }
  | { kind: 'wait'; delayMs?: number }
  | { kind: 'refused'; reason: string };

// batch: up to `count` batches of one endpoint, answered with Claim[] (claimed ones, or one saying why none).
type LedgerItem = { claim: string } | { record: Outcome } | { batch: string; count: number };

export interface Outcome {
  delivery: Delivery;
  attempt: number;
  result: SendResult;
  verdict: Verdict;
  requestHeaders: Record<string, string>;
  /** The events of the batch request this attempt was (the delivery is its carrier, whose id is the batch's). */
  batch?: Delivery[];
}

/**
 * The delivery ledger: what a delivery's state may become, in the database. Claims (single deliveries, or an
 * endpoint's batches), attempt records with their consequences (the delivery's next state, its target's circuit,
 * its endpoint's health) and the ordering and rate-limit holds a claim answers with. Concurrent claims and records
 * share one transaction per round (see MicroBatcher); DeliveryService sends what is claimed here.
 */
@Injectable()
export class DeliveryLedger {
  private readonly logger = new Logger('Delivery');
  private readonly rounds: MicroBatcher<LedgerItem, Claim | Claim[] | boolean>;
  /** How many claims the ledger takes at once: a worker holding fewer jobs leaves its rounds part-empty. */
  readonly capacity: number;
  private readonly circuitSettings: CircuitSettings;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly repo: DeliveryRepository,
    private readonly box: SecretBox,
    private readonly health: EndpointHealth,
    private readonly metrics: Metrics,
    private readonly rates: DeliveryRateLimits,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.circuitSettings = {
      failures: config.webhook.circuitFailures,
      cooldownMs: config.webhook.circuitCooldownMs,
      probeTimeoutMs: config.webhook.timeoutMs + 5_000,
    };
    const lanes = repo.dialect.ledgerRounds;
    this.rounds = new MicroBatcher((items: LedgerItem[]) => this.ledgerRound(items), LEDGER_ROUND_ITEMS, lanes);
    this.capacity = LEDGER_ROUND_ITEMS * lanes;
  }

  /** A claim is answered by the ledger round with its Claim (the casts are the one place the item kinds meet). */
  claim(deliveryId: string): Promise<Claim> {
    return this.rounds.submit({ claim: deliveryId }) as Promise<Claim>;
  }

  /** Up to `count` next batches to one endpoint (claimBatchesIn). */
  claimBatches(endpointId: string, count: number): Promise<Claim[]> {
    return this.rounds.submit({ batch: endpointId, count }) as Promise<Claim[]>;
  }

  async record(outcome: Outcome): Promise<void> {
    await this.rounds.submit({ record: outcome });
  }

  /** When a batch to this endpoint could go next (ms from now), or undefined when it has nothing pending. */
  nextBatchIn(endpointId: string): Promise<number | undefined> {
    return this.nextBatchInWith(this.db.manager, endpointId, new Date());
  }

  /**
   * Updates the deliveries only while the claim is still ours: `sending`, with the attempt count our claim set (a
   * later claim, after the sweeper handed it back, counts one more). Answers whether it was.
   */
  async updateOurClaim(ids: string[], attempt: number, set: QueryDeepPartialEntity<Delivery>): Promise<boolean> {
    return this.uow.run((em) => this.repo.updateOurClaim(em, ids, attempt, set), { urgent: true });
  }

  /**
   * One round of the delivery ledger: the attempts that just finished are recorded first (freeing their task's
   * lane for the next event), then the deliveries about to be sent are claimed, all in one transaction.
   */
  private async ledgerRound(items: LedgerItem[]): Promise<Array<Claim | Claim[] | boolean>> {
    const records = items.flatMap((i) => ('record' in i ? [i.record] : []));
    // Only successes to task webhook_urls: a success closes its URL's circuit whatever it was, and one to a
    // webhook_url has no endpoint health to keep, so these are writes that need no answer: with the next COMMIT.
    if (records.length === items.length && onlySuccessesToRequests(records)) {
      const urls = records.map((o) => o.delivery.url);
      const attempts = attemptsOf(records);
      const writes = this.repo.successStatements(this.db.manager, attempts, successesByCode(records), urls, new Date());
      await this.uow.commitWrites(writes);
      return records.map(() => true);
    }
    // Urgent: sends wait on their claims, and recorded attempts free their lanes.
    return this.uow.run(
      async (em) => {
        const claims = items.flatMap((i) => ('claim' in i ? [i.claim] : []));
        const recorded = records.length ? await this.recordIn(em, records) : [];
        const claimed = claims.length ? await this.claimIn(em, claims) : [];
        const now = new Date();
        const batches: Claim[][] = [];
        for (const i of items) if ('batch' in i) batches.push(await this.claimBatchesIn(em, i.batch, i.count, now));
        let r = 0;
        let c = 0;
        let b = 0;
        return items.map((i) => ('record' in i ? recorded[r++] : 'claim' in i ? claimed[c++] : batches[b++]));
      },
      { urgent: true },
    );
  }

  /**
   * Claims a batch of due deliveries in one transaction: pending ones become `sending` with their attempt
   * counted, unless an earlier event of the same task to the same target is on the wire (ordering), or their
   * endpoint is gone or disabled (then they fail here). Two workers cannot claim the same delivery.
   */
  async claimIn(
    em: EntityManager,
    ids: string[],
    { urls, atCommit = false }: { urls?: readonly string[]; atCommit?: boolean } = {},
  ): Promise<Claim[]> {
    // One statement: the rows and, per lane, the lowest sequence on the wire (claimRows). A caller that knows the
    // rows' URLs (just written) has their circuits read alongside: one wait fewer in the transaction.
    const [found, known] = (await together<unknown>(em, [
      () => this.repo.claimRows(em, [...new Set(ids)]),
      () => (urls ? this.repo.circuits(em, urls) : Promise.resolve(undefined)),
    ])) as [ClaimRow[], Map<string, Circuit> | undefined];
    const pending = found.filter((r) => r.status === 'pending').map((r) => entityFromRow(em, Delivery, r));
    const endpoints = await this.repo.endpointsByIds(em, [
      ...new Set(pending.filter((r) => r.target !== REQUEST_TARGET).map((r) => r.target)),
    ]);
    // A delivery that goes in batches has no claim of its own (its job is from before its endpoint took batches, or
    // a batch's): back to the relay, which hands its endpoint's batches on.
    const toRelay = new Set(pending.filter((r) => inBatches(r, endpoints.get(r.target))).map((r) => r.id));
    if (toRelay.size) await this.repo.undispatch(em, { ids: [...toRelay] });
    const rows = pending.filter((r) => !toRelay.has(r.id));
    const onWire = found.flatMap((r) =>
      r.lane_on_wire === null || r.lane_on_wire === undefined
        ? []
        : [{ id: '', taskId: r.task_id as string, target: r.target as string, sequence: Number(r.lane_on_wire) }],
    );
    const earlierDue = new Map(
      found.flatMap((r) =>
        r.earlier_due === null || r.earlier_due === undefined ? [] : [[r.id as string, Number(r.earlier_due)] as const],
      ),
    );
    const circuits =
      known ??
      (await this.repo.circuits(
        em,
        rows.map((r) => r.url),
      ));
    return this.decideClaims(em, ids, rows, { onWire, earlierDue, circuits, endpoints, toRelay, atCommit });
  }

  /**
   * Claims deliveries a round has just written, from their lanes as read before it wrote them (openInLanes): the
   * claim decided as claimIn decides it, with nothing read after the writes, so that on SQLite the round's writes
   * and this claim all go with its COMMIT. `fresh`: the round's pending webhook_url deliveries; `due`: those of
   * them to claim, to URLs without a circuit.
   */
  claimWritten(
    em: EntityManager,
    due: readonly Delivery[],
    fresh: readonly Delivery[],
    open: readonly OpenInLane[],
  ): Promise<Claim[]> {
    const { onWire, earlierDue } = lanesAfterRound(fresh, open);
    return this.decideClaims(
      em,
      due.map((d) => d.id),
      [...due],
      { onWire, earlierDue, circuits: new Map(), endpoints: new Map(), toRelay: new Set(), atCommit: true },
    );
  }

  /** claimIn's decision, once the rows and their lanes, circuits and endpoints are known: the claim's one rule. */
  private async decideClaims(
    em: EntityManager,
    ids: string[],
    rows: Delivery[],
    lanes: {
      onWire: OrderKey[];
      earlierDue: ReadonlyMap<string, number>;
      circuits: Map<string, Circuit>;
      endpoints: Map<string, Endpoint>;
      toRelay: ReadonlySet<string>;
      atCommit: boolean;
    },
  ): Promise<Claim[]> {
    const { onWire, earlierDue, circuits, endpoints, toRelay, atCommit } = lanes;
    const byId = new Map(rows.map((r) => [r.id, r]));
    const waiting = laneWaits(rows, onWire, earlierDue, Date.now(), ORDER_WAIT_MS);
    const now = new Date();
    const claimed = new Set<string>();
    // Deliveries whose target's circuit is open wait for it without spending an attempt: rescheduled, not claimed.
    const held = new Map<string, Date>();
    let probes: Array<{ url: string; from: Circuit; to: Circuit; id: string }> = [];
    const answers = ids.map((id): Claim => {
      if (toRelay.has(id)) return { kind: 'skipped', toRelay: true };
      const row = byId.get(id);
      if (!row || claimed.has(id)) return { kind: 'skipped' };
      if (waiting.has(id)) return { kind: 'wait', delayMs: waiting.get(id) };
      const target = this.resolveTarget(row, endpoints, now);
      if ('refused' in target) return { kind: 'refused', reason: target.refused };
      const circuit = circuits.get(row.url);
      if (circuit) {
        const admission = admit(circuit, now, this.circuitSettings);
        if (admission.admit === 'hold') {
          held.set(id, admission.until);
          return { kind: 'wait', delayMs: Math.max(1, admission.until.getTime() - now.getTime()) };
        }
        if (admission.admit === 'probe') {
          probes.push({ url: row.url, from: circuit, to: admission.circuit, id });
          circuits.set(row.url, admission.circuit);
        }
      }
      claimed.add(id);
      return { kind: 'claimed', delivery: row, attempt: row.attempts + 1, secrets: target.secrets };
    });
    const unclaim = (id: string, delayMs: number) => {
      claimed.delete(id);
      answers[ids.indexOf(id)] = { kind: 'wait', delayMs };
      probes = probes.filter((p) => p.id !== id);
    };
    const slots = new Map<string, { at: number; buckets: RateBucket[] }>();
    await this.holdToRates(
      em,
      [...claimed].map((id) => byId.get(id)!),
      endpoints,
      now,
      unclaim,
      (id, at, buckets) => slots.set(id, { at, buckets }),
    );
    for (const [id, { at, buckets }] of slots) {
      const i = ids.indexOf(id);
      const a = answers[i];
      if (a.kind === 'claimed') answers[i] = { ...a, notBefore: at, rate: buckets };
    }
    for (const [i, answer] of answers.entries()) {
      if (answer.kind !== 'refused') continue;
      await this.repo.refuse(em, ids[i], answer.reason, now);
    }
    for (const probe of probes) {
      if (await this.repo.takeProbe(em, probe.url, probe.from, probe.to, now)) continue;
      // Another worker's probe went first: this one waits for its answer.
      claimed.delete(probe.id);
      const i = ids.indexOf(probe.id);
      answers[i] = { kind: 'wait', delayMs: 200 };
    }
    for (const [id, until] of held) await this.repo.holdUntil(em, id, until);
    if (claimed.size === 0) return answers;
    // On PostgreSQL another worker may have claimed one since it was read: the claim answers which are ours.
    const won = await this.repo.claim(em, [...claimed], now, { atCommit });
    return answers.map((a) => (a.kind === 'claimed' && !won.has(a.delivery.id) ? { kind: 'skipped' } : a));
  }

  /**
   * Claims up to `count` next batches to one endpoint: one statement reads their events, one per batch marks them
   * `sending`. A failed batch goes again first, whole and alone (its events keep batch_id, the id of the event
   * whose delivery carries it, so webhook-id stays the same); else new ones: the endpoint's due events in order, none
   * whose task has an earlier event on the wire or waiting there (batchCandidates), each batch up to max_events and
   * WEBHOOK_BATCH_MAX_BYTES, a task's events in one of them (fillBatches). A last batch that is not full waits until
   * its oldest event has waited max_wait_ms. The circuit and the rate limits count a batch as one request: a
   * rate-limited endpoint, or a circuit's probe, takes one batch at a time. Answers the batches claimed, or one
   * Claim saying why there are none.
   */
  private async claimBatchesIn(em: EntityManager, endpointId: string, count: number, now: Date): Promise<Claim[]> {
    const endpoint = await this.repo.endpoint(em, endpointId);
    const target = this.resolveEndpoint(endpoint, now);
    if ('refused' in target) {
      await this.repo.refuseAll(em, endpointId, target.refused, now);
      return [{ kind: 'none' }];
    }
    const ep = endpoint!;
    const buckets = rateBuckets(this.rates.prefix, ep.url, ep, this.rates.hostPerSecond);
    if (buckets.length) count = 1;
    const again = await this.repo.batchAgain(em, endpointId, now);
    let batches: Delivery[][];
    if (again.length) {
      batches = [again];
    } else if (ep.batchMaxEvents) {
      const filled = fillBatches(
        await this.repo.batchCandidates(em, endpointId, count * ep.batchMaxEvents, now),
        count,
        ep.batchMaxEvents,
        this.config.webhook.batchMaxBytes,
      );
      // Oldest due first (the endpoint's index), sent in the order they were written (a task's in sequence).
      batches = filled.batches.map((events) => events.sort((a, b) => a.id.localeCompare(b.id)));
      const last = batches[batches.length - 1];
      if (last && !filled.full) {
        const leavesAt = batchLeavesAt(last, ep.batchMaxWaitMs ?? 0);
        if (leavesAt > now.getTime()) {
          batches.pop();
          if (batches.length === 0) return [{ kind: 'wait', delayMs: leavesAt - now.getTime() }];
        }
      }
    } else {
      // The endpoint no longer takes batches: its events not in a batch go back to the relay, to go one by one.
      await this.repo.unbatch(em, endpointId);
      return [{ kind: 'skipped', toRelay: true }];
    }
    batches = batches.filter((events) => events.length > 0);
    if (batches.length === 0) return [{ kind: 'none', nextInMs: await this.nextBatchInWith(em, endpointId, now) }];

    const circuit = (await this.repo.circuits(em, [ep.url])).get(ep.url);
    const admission = circuit ? admit(circuit, now, this.circuitSettings) : undefined;
    if (admission?.admit === 'hold')
      return [{ kind: 'wait', delayMs: Math.max(1, admission.until.getTime() - now.getTime()) }];
    let notBefore: number | undefined;
    if (buckets.length) {
      const [slot] = await this.rates.take([buckets]);
      if ('heldMs' in slot) return [{ kind: 'wait', delayMs: slot.heldMs }];
      notBefore = Date.now() + slot.inMs;
    }
    if (admission?.admit === 'probe') {
      // One request probes the circuit; another worker's probe went first: this batch waits for its answer.
      batches = batches.slice(0, 1);
      if (!(await this.repo.takeProbe(em, ep.url, circuit!, admission.circuit, now)))
        return [{ kind: 'wait', delayMs: 200 }];
    }

    const marked = await this.markBatchesSending(em, batches, now);
    // New batches' events were read without the columns only a carrier needs (url, headers, schedule, …).
    const carriers = new Map(
      (again.length
        ? marked.flatMap((m) => m.events)
        : await this.repo.byIds(
            em,
            marked.map((m) => m.batchId),
          )
      ).map((d) => [d.id, d]),
    );
    const claimed = marked.map(({ events, attempt, batchId }): Claim => ({
      kind: 'claimed',
      delivery: carriers.get(batchId)!,
      attempt,
      secrets: target.secrets,
      batch: events,
      notBefore,
      rate: buckets.length ? buckets : undefined,
    }));
    return claimed.length ? claimed : [{ kind: 'skipped' }];
  }

  /**
   * The claim of batches: each batch's events `sending`, with one attempt count (its events were claimed together,
   * unless one was tried alone before) and its batch_id, one statement per batch (sent together where the database
   * allows). Answers each batch as claimed: on PostgreSQL only what this claim won (another worker may have claimed
   * some since they were read; a batch that lost its carrier is carried by its first event won).
   */
  private async markBatchesSending(
    em: EntityManager,
    batches: Delivery[][],
    now: Date,
  ): Promise<Array<{ events: Delivery[]; attempt: number; batchId: string }>> {
    const planned = batches.map((events) => ({
      events,
      attempt: Math.max(...events.map((e) => e.attempts)) + 1,
      batchId: events[0].batchId ?? events[0].id,
    }));
    const won = await together(
      em,
      planned.map(
        (p) => () =>
          this.repo.claimBatch(
            em,
            p.events.map((e) => e.id),
            p.attempt,
            p.batchId,
            now,
          ),
      ),
    );
    const claimed: typeof planned = [];
    for (const [i, p] of planned.entries()) {
      const events = p.events.filter((e) => won[i].has(e.id));
      if (events.length === 0) continue;
      let batchId = p.batchId;
      if (!won[i].has(batchId)) {
        batchId = events[0].id;
        await this.repo.setBatchId(
          em,
          batchId,
          events.map((e) => e.id),
        );
      }
      claimed.push({ events, attempt: p.attempt, batchId });
    }
    for (const { events, attempt, batchId } of claimed)
      for (const e of events) Object.assign(e, { status: 'sending', attempts: attempt, batchId, updatedAt: now });
    return claimed;
  }

  /** When a batch to this endpoint could go (ms from now): its earliest pending event; soon if that is due already. */
  private async nextBatchInWith(em: EntityManager, endpointId: string, now: Date): Promise<number | undefined> {
    const at = await this.repo.nextBatchAt(em, endpointId);
    if (at === undefined) return undefined;
    // Due but not claimable: behind an earlier event of its task on the wire, which frees it when recorded.
    return Math.max(at - now.getTime(), BLOCKED_BATCH_WAIT_MS);
  }

  /**
   * Rate limits: a delivery to a rate-limited endpoint or host goes only when its buckets (in Redis, shared by every
   * worker) have room: its slot, taken now if it comes within a second, and it is claimed and sent then; otherwise
   * it stays pending, unclaimed, its attempt unspent, and its job comes back when the script says its place in line
   * is that close (DeliveryRateLimits.take). Held deliveries keep their place: a later event
   * of the same task waits while an earlier one is due and held, at the end of this round's line — or claimed by
   * another worker since this round's first read (on PostgreSQL each statement sees the latest commits: without
   * `sending` here, a later event could slip past an earlier one claimed in between, for a slot further ahead).
   */
  private async holdToRates(
    em: EntityManager,
    rows: Delivery[],
    endpoints: Map<string, Endpoint>,
    now: Date,
    unclaim: (id: string, delayMs: number) => void,
    reserved: (id: string, at: number, buckets: RateBucket[]) => void,
  ): Promise<void> {
    const limited = rows
      .map((row) => ({
        row,
        buckets: rateBuckets(
          this.rates.prefix,
          row.url,
          row.target === REQUEST_TARGET ? undefined : endpoints.get(row.target),
          this.rates.hostPerSecond,
        ),
      }))
      .filter((l) => l.buckets.length > 0);
    if (limited.length === 0) return;
    const tasked = limited.filter((l) => l.row.taskId);
    const behind = tasked.length
      ? await this.repo.behindInLane(
          em,
          tasked.map((l) => l.row.id),
          now,
        )
      : new Set<string>();
    const asking = limited.filter((l) => !behind.has(l.row.id));
    const answers = await this.rates.take(asking.map((a) => a.buckets));
    const answeredAt = Date.now();
    let held = 0;
    asking.forEach((a, i) => {
      const answer = answers[i];
      if ('inMs' in answer) {
        // From when the answer came (the round's `now` is older): a slot is never sent early.
        reserved(a.row.id, answeredAt + answer.inMs, a.buckets);
        return;
      }
      held++;
      unclaim(a.row.id, answer.heldMs);
    });
    for (const l of limited)
      if (behind.has(l.row.id))
        unclaim(l.row.id, Math.ceil((held + 1) * Math.max(...l.buckets.map((b) => b.intervalMs))));
  }

  /** Request targets sign with the tenant's secret (looked up after the claim, cached); endpoints with their own. */
  private resolveTarget(
    d: Delivery,
    endpoints: Map<string, Endpoint>,
    now: Date,
  ): { secrets?: () => string[] } | { refused: string } {
    return d.target === REQUEST_TARGET ? {} : this.resolveEndpoint(endpoints.get(d.target), now);
  }

  private resolveEndpoint(
    endpoint: Endpoint | undefined,
    now: Date,
  ): { secrets?: () => string[] } | { refused: string } {
    if (!endpoint) return { refused: 'endpoint deleted' };
    if (endpoint.status !== 'enabled')
      return { refused: `endpoint disabled: ${endpoint.disabledReason ?? 'by its owner'}` };
    // Opened when the request is prepared, outside the claim's transaction: a secret that does not open fails that
    // one delivery (with an attempt saying why), not the whole round of claims.
    return {
      secrets: () => {
        const previous = endpoint.previousSecretSealed ? this.box.decrypt(endpoint.previousSecretSealed) : null;
        return activeSecrets(this.box.decrypt(endpoint.secretSealed), previous, endpoint.previousSecretExpiresAt, now);
      },
    };
  }

  /**
   * Records a batch of attempts and their consequences in one transaction: the attempt log, each delivery's
   * new state, each target URL's circuit and each endpoint's health.
   */
  private async recordIn(em: EntityManager, outcomes: Outcome[]): Promise<boolean[]> {
    const now = new Date();
    const attempts = attemptsOf(outcomes);
    const succeeded = successesByCode(outcomes);
    // The circuits of the attempts' URLs are read alongside (other rows; on PostgreSQL still after the UPDATEs).
    const written = await together<unknown>(em, [
      () => this.repo.insertAttempts(em, attempts),
      ...[...succeeded].map(
        ([code, ids]) =>
          () =>
            this.repo.succeed(em, ids, code, now),
      ),
      () =>
        this.repo.circuits(
          em,
          outcomes.map((o) => o.delivery.url),
          true,
        ),
    ]);
    const circuits = written[written.length - 1] as Map<string, Circuit>;
    for (const o of outcomes) {
      const { delivery: d, result, verdict } = o;
      if (verdict.outcome === 'succeeded') continue;
      const last = { lastStatusCode: result.statusCode ?? null, lastError: verdict.reason, updatedAt: now };
      const ids = idsOf(o);
      if (verdict.outcome === 'retry') {
        // A batch is retried whole: its progress events stay in it.
        const superseded = d.eventType === 'task.progress' && !o.batch && (await this.repo.hasNewer(em, d));
        await this.repo.settle(
          em,
          ids,
          superseded
            ? { ...last, status: 'superseded', completedAt: now }
            : { ...last, status: 'pending', nextAttemptAt: new Date(now.getTime() + verdict.delayMs) },
        );
      } else {
        await this.repo.settle(em, ids, { ...last, status: 'failed', completedAt: now });
      }
    }
    await this.recordOnCircuits(em, outcomes, circuits, now);
    await this.health.record(
      em,
      outcomes.flatMap((o) =>
        o.delivery.target === REQUEST_TARGET
          ? []
          : [{ endpointId: o.delivery.target, verdict: o.verdict, statusCode: o.result.statusCode }],
      ),
      now,
    );
    return outcomes.map(() => true);
  }

  /** Each target URL's circuit after these attempts (in URL order, so that two rounds lock rows alike). */
  /** `circuits`: those of the outcomes' URLs as they were before these outcomes, read with their rows locked. */
  private async recordOnCircuits(
    em: EntityManager,
    requests: Outcome[],
    circuits: Map<string, Circuit>,
    now: Date,
  ): Promise<void> {
    const after = new Map<string, Circuit>();
    for (const { delivery, result } of requests) {
      const failed = isTargetFailure(result) && !isPermanentErrorResult(result);
      const { circuit, opened } = afterAttempt(
        after.get(delivery.url) ?? circuits.get(delivery.url) ?? CLOSED,
        failed,
        now,
        this.circuitSettings,
      );
      after.set(delivery.url, circuit);
      if (opened) {
        this.metrics.circuitOpenings.inc();
        this.logger.warn(
          `circuit of ${new URL(delivery.url).origin} opened until ${circuit.until!.toISOString()} after ${circuit.failures} failures in a row`,
        );
      }
    }
    for (const [url, circuit] of [...after].sort(([a], [b]) => a.localeCompare(b))) {
      const before = circuits.get(url);
      if (before && sameCircuit(before, circuit)) continue;
      await this.repo.saveCircuit(em, url, circuit, before !== undefined, now);
    }
  }
}

const sameCircuit = (a: Circuit, b: Circuit) =>
  a.state === b.state &&
  a.failures === b.failures &&
  a.openings === b.openings &&
  a.until?.getTime() === b.until?.getTime();
// A request Herald could not prepare or undici refused says nothing about the target's health.
const isPermanentErrorResult = (r: SendResult) => r.statusCode === undefined && isPermanentError(r.errorCode);
/** Whether a delivery goes in its endpoint's batches (a redelivery goes alone; a batch's events stay in it). */
export function inBatches(
  d: Pick<Delivery, 'batchId' | 'sendAlone'>,
  endpoint: Pick<Endpoint, 'batchMaxEvents'> | undefined,
): boolean {
  return d.batchId !== null || (!d.sendAlone && !!endpoint?.batchMaxEvents);
}

/** Whether every attempt succeeded and went to a task's webhook_url (ledgerRound). */
const onlySuccessesToRequests = (outcomes: readonly Outcome[]) =>
  outcomes.every((o) => o.verdict.outcome === 'succeeded' && o.delivery.target === REQUEST_TARGET);

/** The attempt log's rows of these outcomes. */
function attemptsOf(outcomes: readonly Outcome[]): DeliveryAttempt[] {
  return outcomes.map(({ delivery, attempt, result, verdict, requestHeaders }) =>
    Object.assign(new DeliveryAttempt(), {
      id: uuidv7(),
      deliveryId: delivery.id,
      number: attempt,
      startedAt: result.startedAt,
      durationMs: result.durationMs,
      statusCode: result.statusCode ?? null,
      error: result.error ?? (verdict.outcome === 'succeeded' ? null : verdict.reason),
      responseSnippet: result.responseSnippet ?? null,
      requestHeaders,
      outcome: verdict.outcome,
    }),
  );
}

/**
 * The ids of the deliveries that succeeded, by status code: one UPDATE per code, so the common case costs one
 * statement per round. A batch is one attempt (of its carrier, whose id is the batch's), its events sharing the outcome.
 */
function successesByCode(outcomes: readonly Outcome[]): Map<number | null, string[]> {
  const succeeded = new Map<number | null, string[]>();
  for (const o of outcomes) {
    if (o.verdict.outcome !== 'succeeded') continue;
    const code = o.result.statusCode ?? null;
    succeeded.set(code, [...(succeeded.get(code) ?? []), ...idsOf(o)]);
  }
  return succeeded;
}

const idsOf = (o: Outcome) => (o.batch ? o.batch.map((d) => d.id) : [o.delivery.id]);
