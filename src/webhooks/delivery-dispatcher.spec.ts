import { describe, expect, it, vi } from 'vitest';
import type { Queue } from 'bullmq';
import type { DataSource } from 'typeorm';
import type { UnitOfWork } from '../database/unit-of-work.js';
import { DeliveryDispatcher } from './delivery-dispatcher.js';
import type { Dispatchable } from './delivery.repository.js';
import { DeliveryRepository } from './delivery.repository.js';
import type { LocalSender } from './local-sender.js';
import { splitForHere } from './outbox-relay.js';
import { WebhookQueue, type WebhookJobData } from './webhook.queue.js';

function queueWith(addBulk: () => Promise<unknown>) {
  const update = vi.fn(async () => ({ affected: 1 }));
  const uow = { run: (work: (em: unknown) => Promise<unknown>) => work({ update }) } as unknown as UnitOfWork;
  const bull = { addBulk: vi.fn(addBulk) } as unknown as Queue<WebhookJobData>;
  const repo = new DeliveryRepository({ options: { type: 'sqlite' } } as DataSource);
  return { queue: new WebhookQueue(bull, uow, repo), bull, update };
}

describe('WebhookQueue.add (deliveries marked dispatched, into BullMQ behind the caller)', () => {
  const delivery = { id: 'd1', nextAttemptAt: new Date() };

  it('adds them as jobs whose id is the delivery id', async () => {
    const { queue, bull, update } = queueWith(async () => []);
    queue.add([delivery]);
    await queue.onApplicationShutdown(); // waits for adds in flight
    expect(vi.mocked(bull.addBulk).mock.calls[0][0]).toMatchObject([{ opts: { jobId: 'd1' } }]);
    expect(update).not.toHaveBeenCalled();
  });

  it('marks them undispatched again when Redis refuses, so the relay queues them later', async () => {
    const { queue, update } = queueWith(() => Promise.reject(new Error('Connection is closed.')));
    queue.add([delivery]);
    await queue.onApplicationShutdown();
    expect(update).toHaveBeenCalledTimes(1);
    expect(update.mock.calls[0]).toContainEqual({ dispatchedAt: null });
  });
});

describe('DeliveryDispatcher (send here now, or queue)', () => {
  const now = 1_000_000;
  const row = (id: string, at: number, target = '*', inBatches = false): Dispatchable => ({
    id,
    nextAttemptAt: new Date(at),
    target,
    inBatches,
  });

  function dispatcherWith(room: number) {
    let left = room;
    const local = {
      take: vi.fn(() => left-- > 0),
      takeBatches: vi.fn(() => room > 0),
      room: () => room,
    } as unknown as LocalSender;
    const queue = { add: vi.fn(), addBatches: vi.fn() } as unknown as WebhookQueue;
    return { dispatcher: new DeliveryDispatcher(local, queue), local, queue };
  }

  it('sends due deliveries here while there is room, and queues the rest and those not due yet', () => {
    const { dispatcher, local, queue } = dispatcherWith(1);
    dispatcher.dispatch([row('a', now), row('b', now), row('c', now + 5_000)], now);
    expect(vi.mocked(local.take).mock.calls.map((c) => c[0])).toEqual(['a', 'b']);
    expect(vi.mocked(queue.add).mock.calls[0][0].map((d) => d.id)).toEqual(['b', 'c']);
  });

  it('hands batched deliveries on once per endpoint: due ones here, later ones as the batch job', () => {
    const { dispatcher, local, queue } = dispatcherWith(8);
    dispatcher.dispatch(
      [row('a', now, 'ep1', true), row('b', now - 5, 'ep1', true), row('c', now + 5_000, 'ep2', true)],
      now,
    );
    expect(vi.mocked(local.takeBatches).mock.calls).toEqual([['ep1']]);
    expect(vi.mocked(queue.addBatches).mock.calls[0][0]).toEqual([
      { endpointId: 'ep2', nextAttemptAt: new Date(now + 5_000) },
    ]);
  });

  it('queues everything the worker here does not take (it is closing, or none runs here)', () => {
    const { dispatcher, queue } = dispatcherWith(0);
    dispatcher.dispatch([row('a', now), row('b', now, 'ep1', true)], now);
    expect(vi.mocked(queue.add).mock.calls[0][0].map((d) => d.id)).toEqual(['a']);
    expect(vi.mocked(queue.addBatches).mock.calls[0][0]).toEqual([{ endpointId: 'ep1', nextAttemptAt: new Date(now) }]);
  });
});

describe('splitForHere (a relay batch, oldest due first)', () => {
  const now = 1_000_000;
  const due = (id: string) => ({ id, nextAttemptAt: new Date(now - 10) });
  const later = (id: string) => ({ id, nextAttemptAt: new Date(now + 60_000) });

  it('queues everything where no webhook worker runs', () => {
    expect(splitForHere([due('a'), later('b')], undefined, now)).toEqual({
      here: [],
      queued: [due('a'), later('b')],
      leftBehind: false,
    });
  });

  it('sends what is due here within the room, queues what is not due, and leaves the rest for the next room', () => {
    expect(splitForHere([due('a'), due('b'), due('c'), later('d')], 2, now)).toEqual({
      here: [due('a'), due('b')],
      queued: [later('d')],
      leftBehind: true,
    });
  });

  it('leaves every due delivery undispatched while the worker here has no room (it is closing or full)', () => {
    expect(splitForHere([due('a')], 0, now)).toEqual({ here: [], queued: [], leftBehind: true });
  });
});
