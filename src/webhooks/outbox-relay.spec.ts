import { describe, expect, it, vi } from 'vitest';
import type { DataSource } from 'typeorm';
import type { HeraldConfig } from '../config/config.js';
import type { UnitOfWork } from '../database/unit-of-work.js';
import { OutboxRelay, splitForHere } from './outbox-relay.js';
import { OutboxSignal } from './outbox-signal.js';
import type { Delivery } from './delivery.entity.js';
import type { WebhookQueue } from './webhook.queue.js';

const config = { sweepIntervalMs: 1_000 } as HeraldConfig;
const delivery = { id: 'd1', nextAttemptAt: new Date() };

function relayWith(dispatch: () => Promise<void>) {
  const update = vi.fn(async () => ({ affected: 1 }));
  const uow = { run: (work: (em: unknown) => Promise<unknown>) => work({ update }) } as unknown as UnitOfWork;
  const queue = { dispatch: vi.fn(dispatch) } as unknown as WebhookQueue;
  const signal = new OutboxSignal();
  const relay = new OutboxRelay({ options: { type: 'sqlite' } } as DataSource, uow, queue, signal, config);
  return { relay, signal, queue, update };
}

describe('OutboxRelay hand-over (deliveries committed as dispatched by this process)', () => {
  it('puts handed-over deliveries straight into the queue', async () => {
    const { relay, signal, queue, update } = relayWith(async () => undefined);
    signal.queue([delivery]);
    await relay.onApplicationShutdown(); // waits for hand-overs in flight
    expect(queue.dispatch).toHaveBeenCalledWith([delivery]);
    expect(update).not.toHaveBeenCalled();
  });

  it('marks them undispatched again when Redis refuses, so the relay queues them later', async () => {
    const { relay, signal, update } = relayWith(() => Promise.reject(new Error('Connection is closed.')));
    signal.queue([delivery]);
    await relay.onApplicationShutdown();
    expect(update).toHaveBeenCalledTimes(1);
    expect(update.mock.calls[0]).toContainEqual({ dispatchedAt: null });
  });
});

describe('OutboxSignal hand-over with a webhook worker in this process', () => {
  const rows = [
    { id: 'a', nextAttemptAt: new Date(), status: 'sending' },
    { id: 'b', nextAttemptAt: new Date(), status: 'pending' },
  ] as Delivery[];

  it('queues only what the worker here did not take', async () => {
    const { relay, signal, queue } = relayWith(async () => undefined);
    signal.sendHere({ room: () => 1, take: (ds) => ds.filter((d) => d.status !== 'sending'), takeBatches: () => [] });
    expect(signal.roomHere()).toBe(1);
    signal.handOver(rows);
    await relay.onApplicationShutdown();
    expect(queue.dispatch).toHaveBeenCalledWith([rows[1]]);
  });

  it('queues nothing when the worker here took everything, and has no room without a worker', async () => {
    const { relay, signal, queue } = relayWith(async () => undefined);
    expect(signal.roomHere()).toBeUndefined();
    signal.sendHere({ room: () => 0, take: () => [], takeBatches: () => [] });
    signal.handOver(rows);
    await relay.onApplicationShutdown();
    expect(queue.dispatch).not.toHaveBeenCalled();
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
