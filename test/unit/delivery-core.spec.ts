import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DataSource } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { loadConfig, type HeraldConfig } from '../../src/config/config.js';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { dataSourceOptions, openDatabase } from '../../src/database/data-source.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { ENTITIES } from '../../src/entities.js';
import { Tenant } from '../../src/auth/tenant.entity.js';
import { Metrics } from '../../src/observability/metrics.js';
import { DeliveryDispatcher } from '../../src/webhooks/delivery-dispatcher.js';
import { DeliveryLedger } from '../../src/webhooks/delivery-ledger.js';
import { DeliveryPlanner } from '../../src/webhooks/delivery-planner.js';
import { DeliveryRepository } from '../../src/webhooks/delivery.repository.js';
import { DeliveryService } from '../../src/webhooks/delivery.service.js';
import { Delivery, DeliveryAttempt, REQUEST_TARGET } from '../../src/webhooks/delivery.entity.js';
import { EndpointHealth } from '../../src/webhooks/endpoint-health.js';
import { LocalSender } from '../../src/webhooks/local-sender.js';
import type { DeliveryRateLimits } from '../../src/webhooks/rate-limits.js';
import { SigningSecrets } from '../../src/webhooks/signing-secrets.js';
import { WebhookSender } from '../../src/webhooks/webhook-sender.js';
import type { WebhookQueue } from '../../src/webhooks/webhook.queue.js';
import { startReceiver, type Receiver, type Reply } from '../support/receiver.js';

// The delivery core against a real SQLite database (the migrations and entities Herald runs) and a real receiver
// on 127.0.0.1: claim, record, the retry decision and the dispatcher, without Nest, Redis or HTTP in front.
let dir: string;
let db: DataSource;
let config: HeraldConfig;
let box: SecretBox;
let receiver: Receiver;
let reply: (n: number) => Reply = () => ({ status: 200, body: 'OK' });
const tenantId = uuidv7();

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-delivery-'));
  config = loadConfig({
    DATA_DIR: dir,
    DATABASE_URL: `sqlite:${path.join(dir, 'herald.db')}`,
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8,::1/128',
    WEBHOOK_RETRY_SCHEDULE: '0s,2s',
  });
  db = await openDatabase(dataSourceOptions(config, ENTITIES), { migrate: true });
  // The deliveries here belong to made-up tasks: no task rows, so no foreign keys to them.
  await db.query('PRAGMA foreign_keys = OFF');
  box = new SecretBox(randomBytes(32));
  await db.getRepository(Tenant).insert({
    id: tenantId,
    name: 'core',
    webhookSecretSealed: box.encrypt('whsec_' + randomBytes(24).toString('base64')),
    eventCursor: 0,
    createdAt: new Date(),
  });
  receiver = await startReceiver({ respond: (_req, n) => reply(n) });
});

afterAll(async () => {
  await receiver?.close();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  reply = () => ({ status: 200, body: 'OK' });
});

function core() {
  const uow = new UnitOfWork(db);
  const repo = new DeliveryRepository(db);
  const planner = new DeliveryPlanner(repo, config);
  const rates = { prefix: 'test', hostPerSecond: 0, take: async () => [], spaceOut: async () => undefined };
  const metrics = new Metrics();
  const ledger = new DeliveryLedger(
    db,
    uow,
    repo,
    box,
    new EndpointHealth(planner, config),
    metrics,
    rates as unknown as DeliveryRateLimits,
    config,
  );
  const service = new DeliveryService(
    db,
    ledger,
    new WebhookSender(config),
    new SigningSecrets(db, box),
    box,
    metrics,
    rates as unknown as DeliveryRateLimits,
    config,
  );
  return { uow, repo, planner, ledger, service };
}

/** What the planner writes for a webhook_url delivery of a (made-up) task's event. */
const planned = (taskId: string, sequence: number, eventType: Delivery['eventType']) => ({
  tenantId,
  taskId,
  eventId: uuidv7(),
  eventType,
  sequence,
  target: REQUEST_TARGET,
  url: receiver.url(),
  headersSealed: null,
  payload: JSON.stringify({ sequence }),
  schedule: [...config.webhook.retrySchedule],
});

/** A webhook_url delivery of a (made-up) task's event, written pending as the planner writes it. */
async function pendingDelivery(
  planner: DeliveryPlanner,
  taskId = uuidv7(),
  sequence = 1,
  dispatched = false,
  eventType: Delivery['eventType'] = 'task.completed',
): Promise<Delivery> {
  const [d] = await db.transaction((em) => planner.insertMany(em, [planned(taskId, sequence, eventType)], dispatched));
  return d;
}

const row = (id: string) => db.getRepository(Delivery).findOneByOrFail({ id });
const attempts = (id: string) =>
  db.getRepository(DeliveryAttempt).find({ where: { deliveryId: id }, order: { number: 'ASC' } });

describe('claim', () => {
  it('claims a pending delivery once: a second claim of the same row, while it is sending, wins nothing', async () => {
    const { repo, planner, uow } = core();
    const d = await pendingDelivery(planner);
    const first = await uow.run((em) => repo.claim(em, [d.id], new Date()));
    expect([...first]).toEqual([d.id]);
    const claimed = await row(d.id);
    expect(claimed.status).toBe('sending');
    expect(claimed.attempts).toBe(1);
    // Our claim is ours while its attempt count is the one it set; the sweeper's hand-back makes it not ours.
    expect(await uow.run((em) => repo.updateOurClaim(em, [d.id], 1, { updatedAt: new Date() }))).toBe(true);
    await uow.run((em) => repo.handBackStuck(em, [d.id]));
    expect(await uow.run((em) => repo.updateOurClaim(em, [d.id], 2, { updatedAt: new Date() }))).toBe(false);
  });

  it('claims fresh deliveries with the COMMIT: sending once committed, pending again when the transaction fails', async () => {
    const { planner, service, uow } = core();
    const kept = await pendingDelivery(planner);
    const claims = await uow.run(async (em) => {
      const fresh = await service.claimFresh(em, [kept]);
      // Held for the COMMIT: the transaction itself still reads the row as it was.
      expect((await em.findOneByOrFail(Delivery, { id: kept.id })).status).toBe('pending');
      return fresh;
    });
    expect(claims.map((c) => c.delivery.id)).toEqual([kept.id]);
    expect(await row(kept.id)).toMatchObject({ status: 'sending', attempts: 1 });

    const dropped = await pendingDelivery(planner);
    await expect(
      uow.run(async (em) => {
        await service.claimFresh(em, [dropped]);
        throw new Error('the round failed');
      }),
    ).rejects.toThrow('the round failed');
    expect(await row(dropped.id)).toMatchObject({ status: 'pending', attempts: 0 });
  });

  it('sends the claims held for the COMMIT before a lane is read again in the same transaction', async () => {
    const { planner, repo, service, ledger, uow } = core();
    const taskId = uuidv7();
    const progress = await pendingDelivery(planner, taskId, 2, false, 'task.progress');
    const later = await pendingDelivery(planner, taskId, 3);
    const second = await uow.run(async (em) => {
      await service.claimFresh(em, [progress]);
      // A newer event's supersede finds the claimed progress on the wire, not pending.
      await repo.supersedeStaleProgress(em, [{ taskId, target: REQUEST_TARGET, sequence: 3 }]);
      return ledger.claimIn(em, [later.id]);
    });
    expect(await row(progress.id)).toMatchObject({ status: 'sending', attempts: 1 });
    expect(second).toMatchObject([{ kind: 'wait' }]);
    expect((await row(later.id)).status).toBe('pending');
  });

  it('holds a later event of a task while an earlier one is on the wire, and sends it once that is recorded', async () => {
    const { planner, repo, uow, service } = core();
    const taskId = uuidv7();
    const earlier = await pendingDelivery(planner, taskId, 1);
    const later = await pendingDelivery(planner, taskId, 2);
    await uow.run((em) => repo.claim(em, [earlier.id], new Date()));
    expect(await service.deliver(later.id)).toMatchObject({ outcome: 'wait' });
    expect((await row(later.id)).status).toBe('pending');
    await uow.run((em) => repo.handBackStuck(em, [earlier.id]));
    expect(await service.deliver(earlier.id)).toMatchObject({ outcome: 'succeeded' });
    await service.settled();
    expect(await service.deliver(later.id)).toMatchObject({ outcome: 'succeeded' });
    await service.settled();
  });

  it('holds a later event behind an earlier one still pending (a retry, a held circuit) until that one is due', async () => {
    const { planner, uow, service } = core();
    const taskId = uuidv7();
    const earlier = await pendingDelivery(planner, taskId, 1, false, 'task.started');
    const later = await pendingDelivery(planner, taskId, 2);
    const retryAt = Date.now() + 60_000;
    await uow.run((em) => em.update(Delivery, { id: earlier.id }, { nextAttemptAt: new Date(retryAt), attempts: 1 }));
    const run = await service.deliver(later.id);
    expect(run).toMatchObject({ outcome: 'wait' });
    // It looks again when the earlier one is due, not every few milliseconds meanwhile.
    expect((run as { delayMs: number }).delayMs).toBeGreaterThan(55_000);
    expect((await row(later.id)).status).toBe('pending');
    // Due again: the earlier one goes first, then the later one.
    await uow.run((em) => em.update(Delivery, { id: earlier.id }, { nextAttemptAt: new Date() }));
    expect(await service.deliver(later.id)).toMatchObject({ outcome: 'wait' });
    expect(await service.deliver(earlier.id)).toMatchObject({ outcome: 'succeeded' });
    await service.settled();
    expect(await service.deliver(later.id)).toMatchObject({ outcome: 'succeeded' });
    await service.settled();
  });
});

describe('claim of what a round wrote, from its lanes read before (claimWritten)', () => {
  // Lanes as a round may find them, then the round's new events: each task's lane before, and the new rows.
  async function lanesBefore(planner: DeliveryPlanner, repo: DeliveryRepository, uow: UnitOfWork) {
    const [onWire, staleProgress, retrying, empty, twoNew] = [uuidv7(), uuidv7(), uuidv7(), uuidv7(), uuidv7()];
    const sending = await pendingDelivery(planner, onWire, 2, false, 'task.progress');
    await uow.run((em) => repo.claim(em, [sending.id], new Date()));
    await pendingDelivery(planner, staleProgress, 2, false, 'task.progress');
    const retry = await pendingDelivery(planner, retrying, 1, false, 'task.started');
    const retryAt = Date.now() + 60_000;
    await uow.run((em) => em.update(Delivery, { id: retry.id }, { nextAttemptAt: new Date(retryAt), attempts: 1 }));
    const events = [
      planned(onWire, 3, 'task.progress'),
      planned(staleProgress, 3, 'task.progress'),
      planned(retrying, 2, 'task.progress'),
      planned(empty, 1, 'task.started'),
      planned(twoNew, 1, 'task.started'),
      planned(twoNew, 2, 'task.progress'),
    ];
    return { taskIds: [onWire, staleProgress, retrying, empty, twoNew], events, retryAt };
  }

  /** One round: the rows written, the stale progress superseded, the fresh ones claimed, the old way or the new. */
  async function round(readBefore: boolean) {
    const { planner, repo, service, uow } = core();
    const { taskIds, events, retryAt } = await lanesBefore(planner, repo, uow);
    const claims = await uow.run(async (em) => {
      const lanes = readBefore ? await repo.openInLanes(em, taskIds) : undefined;
      const fresh = await planner.insertMany(em, events, true, { atCommit: readBefore });
      const newest = events.filter((p) => p.sequence > 1).map((p) => ({ ...p, target: REQUEST_TARGET }));
      await repo.supersedeStaleProgress(em, newest, { atCommit: readBefore });
      const due = fresh.filter((d) => d.status === 'pending');
      return service.claimFresh(em, due, lanes && { fresh: due, open: lanes.open });
    });
    const claimed = new Set(claims.map((c) => c.delivery.id));
    const rows = await db
      .getRepository(Delivery)
      .find({ where: taskIds.map((taskId) => ({ taskId })), order: { sequence: 'ASC' } });
    // Per task, in order: each row's sequence and status, and whether this round claimed it.
    const lanes = taskIds.map((t) =>
      rows.filter((r) => r.taskId === t).map((r) => `${r.sequence}:${r.status}${claimed.has(r.id) ? ':claimed' : ''}`),
    );
    return { lanes, retryAt };
  }

  it('claims what the claim after the writes would claim, and leaves the same rows behind', async () => {
    const before = await round(true);
    const after = await round(false);
    expect(before.lanes).toEqual(after.lanes);
    expect(before.lanes).toEqual([
      ['2:sending', '3:pending'], // behind the event on the wire
      ['2:superseded', '3:sending:claimed'], // the stale progress superseded, so nothing in front
      ['1:pending', '2:pending'], // behind the started event waiting for its retry
      ['1:sending:claimed'],
      ['1:sending:claimed', '2:pending'], // the round's own earlier event goes first
    ]);
  });

  it('waits for an earlier pending event of the lane until that one is due', async () => {
    const { planner, repo, ledger, uow } = core();
    const { taskIds, events, retryAt } = await lanesBefore(planner, repo, uow);
    const answers = await uow.run(async (em) => {
      const lanes = await repo.openInLanes(em, taskIds);
      const fresh = await planner.insertMany(em, events, true, { atCommit: true });
      const due = fresh.filter((d) => d.status === 'pending' && d.taskId === taskIds[2]);
      return ledger.claimWritten(em, due, fresh, lanes.open);
    });
    expect(answers).toMatchObject([{ kind: 'wait' }]);
    expect((answers[0] as { delayMs: number }).delayMs).toBeGreaterThan(retryAt - Date.now() - 5_000);
  });
});

describe('supersede', () => {
  it("supersedes each lane's unsent progress older than its newer event, and nothing else", async () => {
    const { planner, repo, uow } = core();
    const [a, b] = [uuidv7(), uuidv7()];
    const a2 = await pendingDelivery(planner, a, 2, false, 'task.progress');
    const a3 = await pendingDelivery(planner, a, 3, false, 'task.progress');
    const aDone = await pendingDelivery(planner, a, 3, false, 'task.completed');
    const b2 = await pendingDelivery(planner, b, 2, false, 'task.progress');
    const b5 = await pendingDelivery(planner, b, 5, false, 'task.progress');
    // In a batch that failed and waits for its retry: the batch goes again as it was formed.
    const inBatch = await pendingDelivery(planner, b, 1, false, 'task.progress');
    await uow.run((em) => em.update(Delivery, { id: inBatch.id }, { batchId: inBatch.id, attempts: 1 }));
    await uow.run((em) =>
      repo.supersedeStaleProgress(em, [
        { taskId: a, target: REQUEST_TARGET, sequence: 4 },
        { taskId: b, target: REQUEST_TARGET, sequence: 3 },
      ]),
    );
    const seen = await Promise.all([a2, a3, aDone, b2, b5, inBatch].map((d) => row(d.id)));
    expect(seen.map((d) => [d.status, d.lastError])).toEqual([
      ['superseded', 'superseded by event 4'],
      ['superseded', 'superseded by event 4'],
      ['pending', null],
      ['superseded', 'superseded by event 3'],
      ['pending', null],
      ['pending', null],
    ]);
    expect(seen[0].completedAt).toBeInstanceOf(Date);
  });
});

describe('send and record', () => {
  it('records a success: the row succeeded with its status code, one attempt logged', async () => {
    const { planner, service } = core();
    const d = await pendingDelivery(planner);
    expect(await service.deliver(d.id)).toMatchObject({ outcome: 'succeeded' });
    await service.settled();
    const done = await row(d.id);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 1, lastStatusCode: 200 });
    expect(await attempts(d.id)).toMatchObject([{ number: 1, outcome: 'succeeded', statusCode: 200 }]);
    expect(receiver.received.at(-1)!.headers['webhook-id']).toBe(d.eventId);
  });

  it('decides a retry on a 500: back to pending on the schedule, its attempt counted, then fails when spent', async () => {
    const { planner, service } = core();
    reply = () => ({ status: 500, body: 'down' });
    const d = await pendingDelivery(planner);
    const before = Date.now();
    const run = await service.deliver(d.id);
    // The schedule's 2 s, jittered by ±10 %.
    expect(run.outcome).toBe('retry');
    const delayMs = (run as { delayMs: number }).delayMs;
    expect(delayMs).toBeGreaterThanOrEqual(1_800);
    expect(delayMs).toBeLessThanOrEqual(2_200);
    const retried = await row(d.id);
    expect(retried).toMatchObject({ status: 'pending', attempts: 1, lastStatusCode: 500 });
    expect(retried.nextAttemptAt.getTime()).toBeGreaterThanOrEqual(before + delayMs);
    // The schedule has two entries: the second attempt is the last.
    await db.getRepository(Delivery).update({ id: d.id }, { nextAttemptAt: new Date() });
    expect(await service.deliver(d.id)).toMatchObject({ outcome: 'failed' });
    await service.settled();
    expect(await row(d.id)).toMatchObject({ status: 'failed', attempts: 2 });
    expect((await attempts(d.id)).map((a) => a.outcome)).toEqual(['retry', 'failed']);
  });
});

describe('dispatcher', () => {
  it('sends a due, just-committed delivery here and queues one that is not due yet', async () => {
    const { planner, service } = core();
    const queue = { add: vi.fn(), addBatches: vi.fn() } as unknown as WebhookQueue;
    const local = new LocalSender(service, queue, config);
    const dispatcher = new DeliveryDispatcher(local, queue);
    const due = await pendingDelivery(planner, uuidv7(), 1, true);
    const later = {
      id: uuidv7(),
      nextAttemptAt: new Date(Date.now() + 60_000),
      target: REQUEST_TARGET,
      inBatches: false,
    };
    const sent = receiver.received.length;
    dispatcher.dispatch([{ ...due, inBatches: false }, later]);
    expect(vi.mocked(queue.add).mock.calls[0][0]).toEqual([later]);
    await vi.waitFor(async () => expect((await row(due.id)).status).toBe('succeeded'), { timeout: 5_000 });
    expect(receiver.received.length).toBe(sent + 1);
    await local.beforeApplicationShutdown();
  });
});
