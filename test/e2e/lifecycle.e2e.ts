import { afterAll, describe, expect, it } from 'vitest';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const started: TestHerald[] = [];
afterAll(async () => {
  for (const h of started.reverse()) await h.stop().catch(() => undefined);
});

describe('lifecycle', () => {
  it('hands a running generation back on shutdown, and the next start finishes it', async () => {
    const first = await startTestHerald();
    started.push(first);
    const created = await first.api('POST', '/v1/videos/generations/async', {
      model: 'm',
      prompt: 'p',
      simulate: { duration_ms: 3_000 },
    });
    const id = created.body.task_id;
    await eventually(async () => ((await first.api('GET', `/v1/tasks/${id}`)).body.progress >= 10 ? true : undefined));

    const t0 = Date.now();
    await first.herald.close();
    // Closing does not wait for the whole generation: the job is handed back within a step.
    expect(Date.now() - t0).toBeLessThan(2_500);

    const second = await startTestHerald({}, { keepData: first });
    started.push(second);
    const before = await second.api('GET', `/v1/tasks/${id}`);
    expect(before.body.status).toBe('processing');
    const done = await eventually(async () => {
      const res = await second.api('GET', `/v1/tasks/${id}`);
      return res.body.status === 'completed' ? res : undefined;
    });
    expect(done.body.progress).toBe(100);
  });

  it('re-enqueues unfinished tasks whose jobs vanished from Redis', async () => {
    const h = await startTestHerald();
    started.push(h);
    const created = await h.api('POST', '/v1/images/generations/async', {
      model: 'm',
      prompt: 'p',
      simulate: { duration_ms: 400 },
    });
    // Simulate a Redis flush: delete every key under this Herald's queue prefix.
    const { Redis } = await import('ioredis');
    const redis = new Redis('redis://127.0.0.1:6379');
    const keys = await redis.keys(`${h.config.queuePrefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    const done = await eventually(async () => {
      const res = await h.api('GET', `/v1/tasks/${created.body.task_id}`);
      return res.body.status === 'completed' ? res : undefined;
    });
    expect(done.body.status).toBe('completed');
  });
});
