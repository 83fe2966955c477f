import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { v7 as uuidv7 } from 'uuid';
import { InFlight } from '../common/in-flight.js';
import { MicroBatcher } from '../common/micro-batcher.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { SealedValueError, SecretBox } from '../crypto/secret-box.js';
import { entityFromRow, together } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { activeSecrets } from './endpoint-rules.js';
import { Endpoint } from './endpoint.entity.js';
import { Metrics } from '../observability/metrics.js';
import { admit, afterAttempt, Circuit, CircuitSettings, CLOSED, isTargetFailure } from './circuit-breaker.js';
import { DeliveryRepository } from './delivery.repository.js';
import { TaskTraces } from '../observability/task-traces.js';
import { startClientSpan, type ClientSpan } from '../observability/tracing.js';
import { laneWaits } from './delivery-order.js';
import { DeliveryRateLimits, RateBucket, rateBuckets } from './rate-limits.js';
import { batchBody, batchLeavesAt, fillBatches } from './batch-rules.js';
import { EndpointHealth } from './endpoint-health.js';
import { Delivery, DeliveryAttempt, REQUEST_TARGET } from './delivery.entity.js';
import { decide, isPermanentError, UNPREPARABLE, Verdict } from './retry-policy.js';
import { signatureHeader, signLegacy } from './signature.js';
import { SigningSecrets } from './signing-secrets.js';
import { SendResult, WebhookSender } from './webhook-sender.js';

export type DeliveryRun = Verdict | { outcome: 'skipped' } | { outcome: 'wait'; delayMs: number };

// Claims and records that one ledger round takes at most.
const LEDGER_ROUND_ITEMS = 128;

// When an earlier delivery to the same target is on the wire, a later one waits this long and looks again.
const ORDER_WAIT_MS = 20;
// Batches of one endpoint on the wire at once. A batch run has one claim in the ledger at a time, for as many
// batches as have room (one statement reads their events, one each marks them): while it is answered, the sends
// that finish free their places, so a round takes several batches' claims and records at once (its commit is its
// fixed cost). A task's later events wait for its earlier ones, as for single deliveries.
const BATCHES_AT_ONCE = 8;
// A batch run of one endpoint ends after this many batches (its job comes again at once): one endpoint's backlog
// does not hold a worker's place forever.
const BATCHES_PER_RUN = 800;
// Events of a batching endpoint that are due but behind an earlier event of their task elsewhere look again then.
const BLOCKED_BATCH_WAIT_MS = 50;

// The sweeper hands a `sending` delivery back once its claim is older than the webhook timeout plus a margin of
// 5 s or more. The worker holds more claimed jobs than it has places on the wire, so when slow receivers hold every
// place a claim can wait longer than that margin: past this wait its clock is restarted (or, if the sweeper was
// quicker, the send is dropped) so that one delivery is never on the wire twice. Fast receivers never wait this long.
const CONFIRM_CLAIM_AFTER_MS = 1_000;

/** Masks what must never be stored or shown: the caller's header values and the signatures. */
export function redactRequestHeaders(
  headers: Record<string, string>,
  callerHeaderNames: readonly string[],
): Record<string, string> {
  const caller = new Set(callerHeaderNames.map((n) => n.toLowerCase()));
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => {
      const lower = name.toLowerCase();
      if (caller.has(lower) || lower === 'x-signature') return [name, '***'];
      if (lower === 'webhook-signature')
        return [
          name,
          value
            .split(' ')
            .map((s) => `${s.split(',')[0]},***`)
            .join(' '),
        ];
      return [name, value];
    }),
  );
}

type Claim =
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

/** A claim taken in the committer's own transaction, for this process's LocalSender to send after the commit. */
export type FreshClaim = Extract<Claim, { kind: 'claimed' }>;

// batch: up to `count` batches of one endpoint, answered with Claim[] (claimed ones, or one saying why none).
type LedgerItem = { claim: string } | { record: Outcome } | { batch: string; count: number };

interface Outcome {
  delivery: Delivery;
  attempt: number;
  result: SendResult;
  verdict: Verdict;
  requestHeaders: Record<string, string>;
  /** The events of the batch request this attempt was (the delivery is its carrier, whose id is the batch's). */
  batch?: Delivery[];
}

/** The delivery rules: claim, order, sign, send, record the attempt, decide what comes next, look after endpoints. */
@Injectable()
export class DeliveryService {
  private readonly logger = new Logger('Delivery');
  // The claims and attempt records of concurrent sends share one transaction per round (see MicroBatcher).
  private readonly ledger: MicroBatcher<LedgerItem, Claim | Claim[] | boolean>;
  // Attempts recorded behind the send: shutdown waits for them before the database closes.
  private readonly recording = new InFlight();
  private stopping = false;
  /** Since stopSending: requests that were on the wire and finished, and claims given back unsent (shutdown log). */
  readonly shutdown = { finished: 0, givenBack: 0 };
  /** How many claims the ledger takes at once: a worker holding fewer jobs leaves its rounds part-empty. */
  readonly ledgerCapacity: number;
  private readonly circuitSettings: CircuitSettings;
  private readonly traces: TaskTraces;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly repo: DeliveryRepository,
    private readonly sender: WebhookSender,
    private readonly secrets: SigningSecrets,
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
    this.traces = new TaskTraces(db);
    const rounds = repo.dialect.ledgerRounds;
    this.ledger = new MicroBatcher((items: LedgerItem[]) => this.ledgerRound(items), LEDGER_ROUND_ITEMS, rounds);
    this.ledgerCapacity = LEDGER_ROUND_ITEMS * rounds;
  }

  async deliver(deliveryId: string): Promise<DeliveryRun> {
    return this.sendClaim(await this.claim(deliveryId));
  }

  /**
   * Claims just-written deliveries in the transaction that wrote them (the same claim as the ledger's, claimIn), for
   * this process's local sender to send right after the commit: a fresh delivery costs no ledger round of its own.
   * Should the process die before sending, the sweeper hands a row left `sending` back, as for any claim.
   */
  async claimFresh(em: EntityManager, deliveries: readonly Delivery[]): Promise<FreshClaim[]> {
    const claims = await this.claimIn(
      em,
      deliveries.map((d) => d.id),
    );
    return claims.filter((c): c is FreshClaim => c.kind === 'claimed');
  }

  /** Sends a delivery claimed with its transaction (claimFresh), once that has committed. */
  deliverClaimed(claim: FreshClaim): Promise<DeliveryRun> {
    return this.sendClaim(claim);
  }

  /**
   * Batch delivery to one endpoint: claims batches (each up to max_events of its due events), sends each as one
   * request, records one attempt per batch, and claims the next ones while those are on the wire and committed,
   * up to BATCHES_AT_ONCE at once, until nothing more can go now. Answers when to look again (ms), or undefined
   * when the endpoint has nothing pending. Throws (after the sends in flight have ended) what a send threw.
   */
  async deliverBatches(endpointId: string): Promise<number | undefined> {
    const sending = new Set<Promise<void>>();
    const recording: Array<Promise<void>> = [];
    let failure: { err: unknown } | undefined;
    let next: number | undefined = 0;
    let claimed = 0;
    for (;;) {
      if (this.stopping || failure || claimed >= BATCHES_PER_RUN) break;
      const room = BATCHES_AT_ONCE - sending.size;
      if (room === 0) {
        await Promise.race(sending);
        continue;
      }
      const count = Math.min(room, BATCHES_PER_RUN - claimed);
      let claims: Claim[];
      try {
        claims = (await this.ledger.submit({ batch: endpointId, count })) as Claim[];
      } catch (err) {
        // The database refused the claim: thrown once the batches on the wire have ended.
        failure = { err };
        break;
      }
      const ours = claims.filter((c) => c.kind === 'claimed');
      for (const claim of ours) {
        claimed++;
        const send: Promise<void> = this.sendClaim(claim, (recorded) => recording.push(recorded)).then(
          () => void sending.delete(send),
          (err: unknown) => {
            sending.delete(send);
            failure ??= { err };
          },
        );
        sending.add(send);
      }
      if (ours.length) continue;
      const [claim] = claims;
      if (claim.kind === 'wait') {
        next = claim.delayMs ?? ORDER_WAIT_MS;
        break;
      }
      if (claim.kind === 'skipped') {
        next = claim.toRelay ? undefined : ORDER_WAIT_MS;
        break;
      }
      if (claim.kind !== 'none') {
        next = undefined;
        break;
      }
      // Events whose task has an event in a batch still on the wire or being recorded go once that commits.
      if (sending.size) {
        await Promise.race(sending);
        continue;
      }
      if (recording.length === 0) {
        next = claim.nextInMs;
        break;
      }
      await Promise.allSettled(recording.splice(0));
    }
    await Promise.allSettled([...sending]);
    if (failure) throw failure.err;
    return this.stopping ? 0 : next;
  }

  /** When a batch to this endpoint could go next (ms from now), or undefined when it has nothing pending. */
  async nextBatchIn(endpointId: string): Promise<number | undefined> {
    return this.nextBatchInWith(this.db.manager, endpointId, new Date());
  }

  private async sendClaim(claim: Claim, onRecorded?: (recorded: Promise<void>) => void): Promise<DeliveryRun> {
    if (claim.kind === 'skipped' || claim.kind === 'none') return { outcome: 'skipped' };
    if (claim.kind === 'wait') return { outcome: 'wait', delayMs: claim.delayMs ?? ORDER_WAIT_MS };
    if (claim.kind === 'refused') return { outcome: 'failed', reason: claim.reason };
    const { delivery, attempt, batch } = claim;
    // A batch is claimed, given back, confirmed and recorded as one: every event of it at once.
    const ids = batch ? batch.map((d) => d.id) : [delivery.id];
    const claimedAt = Date.now();
    if (claim.notBefore !== undefined && claim.notBefore > Date.now()) await sleep(claim.notBefore - Date.now());
    const prepared = await this.prepare(delivery, claim.secrets);
    const { secrets, callerHeaders } = 'unpreparable' in prepared ? { secrets: [], callerHeaders: {} } : prepared;
    let headers: Record<string, string> = {};
    // Tracing: the attempt is a span in its task's trace, and the receiver gets its id in `traceparent`.
    const traceLookup = this.traces.of(delivery.taskId);
    const taskTrace = traceLookup && (await traceLookup);
    let span: ClientSpan | undefined;
    // A request that cannot be prepared is not sent: it is recorded as a failed attempt, final (see retry-policy).
    const result =
      'unpreparable' in prepared
        ? prepared.unpreparable
        : await this.sender.sendWhenPlaced(async () => {
            // Shutting down: what is not on the wire yet is given back rather than sent, so shutdown waits only for the
            // requests already out (another worker, or this one restarted, sends it). A batch gives back all its events.
            if (this.stopping) {
              if (await this.giveBack(ids, attempt)) this.shutdown.givenBack += ids.length;
              return null;
            }
            if (claim.rate) await this.rates.spaceOut(claim.rate);
            if (Date.now() - claimedAt > CONFIRM_CLAIM_AFTER_MS && !(await this.confirmClaim(ids, attempt)))
              return null;
            // Signed as it leaves: a wait for the wire does not age the timestamp receivers check.
            // A batch is one JSON array of the envelopes, in order, signed as one message whose id is the batch's.
            const body = batch ? batchBody(batch.map((d) => d.payload)) : delivery.payload;
            headers = this.signedHeaders(
              delivery,
              secrets,
              callerHeaders,
              batch ? delivery.id : delivery.eventId,
              body,
            );
            // A batch is one request, so one span: in the carrier's task trace, naming how many events it carried.
            span = startClientSpan(taskTrace, batch ? 'webhook batch' : `webhook ${delivery.eventType}`, {
              'herald.delivery.id': delivery.id,
              'herald.delivery.target': delivery.target,
              'herald.delivery.attempt': attempt,
              'herald.event.type': batch ? 'batch' : delivery.eventType,
              'herald.task.id': delivery.taskId ?? '',
              'url.full': delivery.url.split('?')[0],
              ...(batch ? { 'herald.batch.id': delivery.id, 'herald.batch.events': batch.length } : {}),
            });
            if (span) {
              // Ours replaces a caller's traceparent in any spelling: a request carries one.
              for (const name of Object.keys(headers)) if (name.toLowerCase() === 'traceparent') delete headers[name];
              headers.traceparent = span.traceparent;
            }
            return { url: delivery.url, body, headers };
          });
    span?.end(result ?? { error: 'not sent' });
    // Given back, by shutdown or by the sweeper while it waited: whoever claims it next sends it.
    if (!result) return { outcome: 'skipped' };
    if (this.stopping) this.shutdown.finished++;
    const verdict = decide(result, attempt, delivery.schedule);
    const requestHeaders = redactRequestHeaders(headers, Object.keys(callerHeaders));
    // A batch shares its request's fate: one attempt, retried whole on the endpoint's schedule.
    const recorded = this.record({ delivery, attempt, result, verdict, requestHeaders, batch });
    this.observe(batch ?? [delivery], result, verdict);
    // A retry is rescheduled by the queue, so its record (the row back to pending) must be committed first.
    if (verdict.outcome === 'retry') await recorded;
    // A finished delivery is recorded behind: the worker takes its next job while the ledger commits this one with
    // its round. Should the process die before that commit, the row is still `sending`; the sweeper hands it back
    // and it is sent again with the same webhook-id (at least once, as promised).
    else {
      this.recordBehind(recorded);
      onRecorded?.(recorded.catch(() => undefined));
    }
    return verdict;
  }

  /**
   * The signing secrets and the caller's headers, opened from their sealed form. A sealed value that does not open
   * (another ENCRYPTION_KEY, or damage) makes the delivery unpreparable, an attempt no retry can fix; other errors
   * (the database) are thrown, and the delivery is tried again.
   */
  private async prepare(
    delivery: Delivery,
    endpointSecrets?: () => string[],
  ): Promise<{ secrets: string[]; callerHeaders: Record<string, string> } | { unpreparable: SendResult }> {
    const unpreparable = (what: string, err: Error) => ({
      unpreparable: {
        startedAt: new Date(),
        durationMs: 0,
        error: `cannot prepare the request (${what}): ${err.message}`,
        errorCode: UNPREPARABLE,
      },
    });
    let secrets: string[];
    try {
      secrets = endpointSecrets ? endpointSecrets() : await this.secrets.forTenant(delivery.tenantId);
    } catch (err) {
      if (err instanceof SealedValueError) return unpreparable('signing secret', err);
      throw err;
    }
    try {
      return {
        secrets,
        callerHeaders: delivery.headersSealed
          ? (JSON.parse(this.box.decrypt(delivery.headersSealed)) as Record<string, string>)
          : {},
      };
    } catch (err) {
      if (err instanceof SealedValueError || err instanceof SyntaxError) return unpreparable('stored headers', err);
      throw err;
    }
  }

  private signedHeaders(
    delivery: Delivery,
    secrets: string[],
    callerHeaders: Record<string, string>,
    messageId = delivery.eventId,
    body = delivery.payload,
  ): Record<string, string> {
    const timestamp = Math.floor(Date.now() / 1000);
    return {
      ...callerHeaders,
      'Content-Type': 'application/json',
      'User-Agent': this.config.webhook.userAgent,
      'webhook-id': messageId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader(secrets, messageId, timestamp, body),
      'X-Signature': signLegacy(secrets[0], body),
      // Conduit's server marks its per-request webhooks so; receivers written against it route on these.
      ...(delivery.target === REQUEST_TARGET
        ? {
            'X-Webhook-Type': delivery.eventType === 'task.progress' ? 'progress' : 'completion',
            'X-Webhook-Timestamp': String(timestamp),
          }
        : {}),
    };
  }

  /**
   * Restarts a claim's clock before a send that waited long for the wire, so that the send ends within the
   * sweeper's margin for it. False when the sweeper has already handed the delivery back (it is not ours to send).
   */
  private confirmClaim(ids: string[], attempt: number): Promise<boolean> {
    return this.updateOurClaim(ids, attempt, { updatedAt: new Date() });
  }

  /** Back to pending and undispatched, its attempt not counted, for the relay to hand out again. */
  private giveBack(ids: string[], attempt: number): Promise<boolean> {
    return this.updateOurClaim(ids, attempt, {
      status: 'pending',
      attempts: () => 'attempts - 1',
      dispatchedAt: null,
      updatedAt: new Date(),
    });
  }

  /**
   * Updates the deliveries only while the claim is still ours: `sending`, with the attempt count our claim set (a
   * later claim, after the sweeper handed it back, counts one more). Answers whether it was.
   */
  private async updateOurClaim(
    ids: string[],
    attempt: number,
    set: QueryDeepPartialEntity<Delivery>,
  ): Promise<boolean> {
    return this.uow.run((em) => this.repo.updateOurClaim(em, ids, attempt, set), { urgent: true });
  }

  /** From now on claims still waiting for the wire are given back instead of sent (the worker is closing). */
  stopSending(): void {
    this.stopping = true;
  }

  /** A claim is answered by the ledger round with its Claim (the cast is the one place the item kinds meet). */
  private claim(deliveryId: string): Promise<Claim> {
    return this.ledger.submit({ claim: deliveryId }) as Promise<Claim>;
  }

  private async record(outcome: Outcome): Promise<void> {
    await this.ledger.submit({ record: outcome });
  }

  private recordBehind(recorded: Promise<void>): void {
    this.recording.track(
      recorded.catch((err: Error) =>
        this.logger.error(`could not record a delivery attempt; the sweeper will hand it back: ${err.message}`),
      ),
    );
  }

  /** Resolves when every attempt recorded behind is committed (shutdown waits for it before the database closes). */
  settled(): Promise<void> {
    return this.recording.settled();
  }

  private observe(events: Delivery[], result: SendResult, verdict: Verdict): void {
    this.metrics.attempts.inc({ outcome: verdict.outcome });
    this.metrics.attemptDuration.observe(result.durationMs / 1000);
    if (verdict.outcome === 'retry') return;
    this.metrics.deliveries.inc({ outcome: verdict.outcome }, events.length);
    if (verdict.outcome === 'succeeded')
      for (const d of events) this.metrics.deliveryLatency.observe((Date.now() - d.createdAt.getTime()) / 1000);
  }

  /**
   * One round of the delivery ledger: the attempts that just finished are recorded first (freeing their task's
   * lane for the next event), then the deliveries about to be sent are claimed, all in one transaction.
   */
  private ledgerRound(items: LedgerItem[]): Promise<Array<Claim | Claim[] | boolean>> {
    // Urgent: sends wait on their claims, and recorded attempts free their lanes.
    return this.uow.run(
      async (em) => {
        const records = items.flatMap((i) => ('record' in i ? [i.record] : []));
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
  private async claimIn(em: EntityManager, ids: string[]): Promise<Claim[]> {
    // One statement: the rows and, per lane, the lowest sequence on the wire (claimRows).
    const found = await this.repo.claimRows(em, [...new Set(ids)]);
    const pending = found.filter((r) => r.status === 'pending').map((r) => entityFromRow(em, Delivery, r));
    const endpoints = await this.repo.endpointsByIds(em, [
      ...new Set(pending.filter((r) => r.target !== REQUEST_TARGET).map((r) => r.target)),
    ]);
    // A delivery that goes in batches has no claim of its own (its job is from before its endpoint took batches, or
    // a batch's): back to the relay, which hands its endpoint's batches on.
    const toRelay = new Set(pending.filter((r) => inBatches(r, endpoints.get(r.target))).map((r) => r.id));
    if (toRelay.size) await this.repo.undispatch(em, { ids: [...toRelay] });
    const rows = pending.filter((r) => !toRelay.has(r.id));
    const byId = new Map(rows.map((r) => [r.id, r]));
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
    const waiting = laneWaits(rows, onWire, earlierDue, Date.now(), ORDER_WAIT_MS);

    const circuits = await this.repo.circuits(
      em,
      rows.map((r) => r.url),
    );

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
    const won = await this.repo.claim(em, [...claimed], now);
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
    const attempts = outcomes.map(({ delivery, attempt, result, verdict, requestHeaders }) =>
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
    // Successes share one UPDATE per status code: the common case costs one statement per batch, sent together
    // with the attempt log (different rows).
    const succeeded = new Map<number | null, string[]>();
    // A batch is one attempt (of its carrier, whose id is the batch's), and its events share the outcome.
    const idsOf = (o: Outcome) => (o.batch ? o.batch.map((d) => d.id) : [o.delivery.id]);
    for (const o of outcomes) {
      if (o.verdict.outcome !== 'succeeded') continue;
      const code = o.result.statusCode ?? null;
      succeeded.set(code, [...(succeeded.get(code) ?? []), ...idsOf(o)]);
    }
    await together<unknown>(em, [
      () => this.repo.insertAttempts(em, attempts),
      ...[...succeeded].map(
        ([code, ids]) =>
          () =>
            this.repo.succeed(em, ids, code, now),
      ),
    ]);
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
    await this.recordOnCircuits(em, outcomes, now);
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
  private async recordOnCircuits(em: EntityManager, outcomes: Outcome[], now: Date): Promise<void> {
    const requests = outcomes;
    const circuits = await this.repo.circuits(
      em,
      requests.map((o) => o.delivery.url),
      true,
    );
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
