// Baseline for the worker protocol: a bare BullMQ Worker taking `total` jobs that do nothing, `concurrency` at once.
// It is what one would write with Redis alone: no database, no HTTP, no task states or events.
import { Queue, Worker } from 'bullmq';

export async function bullmqNoop(redisUrl, total, concurrency) {
  const connection = { url: redisUrl };
  const name = `baseline-noop-${Date.now()}`;
  const queue = new Queue(name, { connection });
  for (let i = 0; i < total; i += 1_000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1_000, total - i) }, (_, k) => ({
        name: 'job',
        data: { n: i + k },
        opts: { removeOnComplete: true },
      })),
    );
  }
  let done = 0;
  let finished;
  const all = new Promise((r) => (finished = r));
  const t0 = performance.now();
  const worker = new Worker(name, async () => ({ url: 'https://cdn.example/out.png' }), { connection, concurrency });
  worker.on('completed', () => ++done === total && finished());
  await all;
  const seconds = (performance.now() - t0) / 1000;
  await worker.close();
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  return total / seconds;
}
