import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { setTimeout as sleep } from 'node:timers/promises';
import { InFlight } from '../common/in-flight.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { SealedValueError, SecretBox } from '../crypto/secret-box.js';
import { Metrics } from '../observability/metrics.js';
import { TaskTraces } from '../observability/task-traces.js';
import { startClientSpan, type ClientSpan } from '../observability/tracing.js';
import { batchBody } from './batch-rules.js';
import { Claim, DeliveryLedger, ORDER_WAIT_MS } from './delivery-ledger.js';
import { Delivery, REQUEST_TARGET } from './delivery.entity.js';
import type { OpenInLane } from './delivery-order.js';
import { DeliveryRateLimits } from './rate-limits.js';
import { decide, UNPREPARABLE, Verdict } from './retry-policy.js';
import { signatureHeader, signLegacy } from './signature.js';
import { SigningSecrets } from './signing-secrets.js';
import { SendResult, WebhookSender } from './webhook-sender.js';

export type DeliveryRun = Verdict | { outcome: 'skipped' } | { outcome: 'wait'; delayMs: number };

/** A claim taken in the committer's own transaction, for this process's LocalSender to send after the commit. */
export type FreshClaim = Extract<Claim, { kind: 'claimed' }>;

// Batches of one endpoint on the wire at once. A batch run has one claim in the ledger at a time, for as many
// batches as have room (one statement reads their events, one each marks them): while it is answered, the sends
// that finish free their places, so a round takes several batches' claims and records at once (its commit is its
// fixed cost). A task's later events wait for its earlier ones, as for single deliveries.
const BATCHES_AT_ONCE = 8;
// A batch run of one endpoint ends after this many batches (its job comes again at once): one endpoint's backlog
// does not hold a worker's place forever.
const BATCHES_PER_RUN = 800;

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

/**
 * Sending: takes what the ledger claims, signs it as it leaves, sends it through the one guarded sender, and hands
 * the attempt back to the ledger to record. Single deliveries and an endpoint's batches.
 */
@Injectable()
export class DeliveryService {
  private readonly logger = new Logger('Delivery');
  // Attempts recorded behind the send: shutdown waits for them before the database closes.
  private readonly recording = new InFlight();
  private stopping = false;
  /** Since stopSending: requests that were on the wire and finished, and claims given back unsent (shutdown log). */
  readonly shutdown = { finished: 0, givenBack: 0 };
  private readonly traces: TaskTraces;

  constructor(
    @InjectDataSource() db: DataSource,
    private readonly ledger: DeliveryLedger,
    private readonly sender: WebhookSender,
    private readonly secrets: SigningSecrets,
    private readonly box: SecretBox,
    private readonly metrics: Metrics,
    private readonly rates: DeliveryRateLimits,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.traces = new TaskTraces(db);
  }

  /** How many claims the ledger takes at once: a worker holding fewer jobs leaves its rounds part-empty. */
  get ledgerCapacity(): number {
    return this.ledger.capacity;
  }

  async deliver(deliveryId: string): Promise<DeliveryRun> {
    return this.sendClaim(await this.ledger.claim(deliveryId));
  }

  /**
   * Claims just-written deliveries in the transaction that wrote them (the same claim as the ledger's, claimIn), for
   * this process's local sender to send right after the commit: a fresh delivery costs no ledger round of its own.
   * Should the process die before sending, the sweeper hands a row left `sending` back, as for any claim. The
   * claim is the last statement of the committer's transaction: on SQLite it goes with the COMMIT (writeAtCommit).
   */
  async claimFresh(
    em: EntityManager,
    deliveries: readonly Delivery[],
    written?: { fresh: readonly Delivery[]; open: readonly OpenInLane[] },
  ): Promise<FreshClaim[]> {
    // `written`: the round read its lanes before writing (Outbox.openLanes), so the claim reads nothing after.
    const claims = written
      ? await this.ledger.claimWritten(em, deliveries, written.fresh, written.open)
      : await this.ledger.claimIn(
          em,
          deliveries.map((d) => d.id),
          { urls: deliveries.map((d) => d.url), atCommit: true },
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
        claims = await this.ledger.claimBatches(endpointId, count);
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
  nextBatchIn(endpointId: string): Promise<number | undefined> {
    return this.ledger.nextBatchIn(endpointId);
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
    const recorded = this.ledger.record({ delivery, attempt, result, verdict, requestHeaders, batch });
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
    return this.ledger.updateOurClaim(ids, attempt, { updatedAt: new Date() });
  }

  /** Back to pending and undispatched, its attempt not counted, for the relay to hand out again. */
  private giveBack(ids: string[], attempt: number): Promise<boolean> {
    return this.ledger.updateOurClaim(ids, attempt, {
      status: 'pending',
      attempts: () => 'attempts - 1',
      dispatchedAt: null,
      updatedAt: new Date(),
    });
  }

  /** From now on claims still waiting for the wire are given back instead of sent (the worker is closing). */
  stopSending(): void {
    this.stopping = true;
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
}
