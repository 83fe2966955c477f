import { describe, expect, it } from 'vitest';
import type { TaskEvent } from '../tasks/task-event.entity.js';
import { StreamBatch, StreamConnection, StreamEvent, Subscription, type StreamSink } from './tenant-streams.js';

const event = (cursor: number, taskId = 'a', type: TaskEvent['type'] = 'task.progress'): StreamEvent =>
  new StreamEvent({
    id: `e${cursor}`,
    taskId,
    tenantId: 't',
    sequence: cursor,
    cursor,
    type,
    data: { progress: cursor },
    createdAt: new Date(0),
  });

function subscription(filter: Subscription['filter'], last = 0) {
  const sent: StreamBatch[] = [];
  const sink: StreamSink = { send: (b) => void sent.push(b), buffered: () => 0, close: () => undefined };
  const connection = new StreamConnection('t', 'k', 'slot', 'ws', sink, 1 << 20, () => undefined);
  return { sub: new Subscription(connection, filter, last), sent };
}

describe('Subscription.deliver', () => {
  it("hands a '*' follower the feed's batch itself: its bytes are joined once for every such connection", () => {
    const batch = new StreamBatch([event(1), event(2), event(3)]);
    const a = subscription({ taskIds: '*', types: null });
    const b = subscription({ taskIds: '*', types: null });
    a.sub.deliver(batch);
    b.sub.deliver(batch);
    expect(a.sent[0]).toBe(batch);
    expect(b.sent[0]).toBe(batch);
    expect(a.sent[0].ws).toBe(b.sent[0].ws);
  });

  it('sends a filtered follower only what it wants, and nothing at or below its last cursor', () => {
    const batch = new StreamBatch([event(1, 'a'), event(2, 'b'), event(3, 'a', 'task.completed'), event(4, 'a')]);
    const { sub, sent } = subscription({ taskIds: new Set(['a']), types: new Set(['task.progress']) });
    sub.deliver(batch);
    expect(sent[0].events.map((e) => e.cursor)).toEqual([1, 4]);
    const late = subscription({ taskIds: '*', types: null }, 2);
    late.sub.deliver(batch);
    expect(late.sent[0].events.map((e) => e.cursor)).toEqual([3, 4]);
    late.sub.deliver(batch);
    expect(late.sent).toHaveLength(1);
    expect(late.sub.last).toBe(4);
  });

  it('frames the batch as the WebSocket text messages of its events, in order', async () => {
    const batch = new StreamBatch([event(1), event(2)]);
    // ws's own reader takes the bytes apart again.
    const { Receiver } = (await import('ws')) as unknown as {
      Receiver: new (o: object) => NodeJS.WritableStream & { on(e: 'message', f: (d: Buffer) => void): void };
    };
    const receiver = new Receiver({ isServer: false });
    const messages: string[] = [];
    receiver.on('message', (d) => messages.push(String(d)));
    receiver.write(batch.ws);
    expect(messages.map((m) => JSON.parse(m) as { type: string; cursor: string })).toEqual([
      expect.objectContaining({ type: 'event', cursor: '0000000000000001' }),
      expect.objectContaining({ type: 'event', cursor: '0000000000000002' }),
    ]);
  });
});
