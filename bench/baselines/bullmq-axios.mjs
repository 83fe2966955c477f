// Baseline: what a user would write by hand — BullMQ jobs carrying the payload, a Worker posting with axios
// (keep-alive agent). No database, no signing, no attempt log.
import axios from 'axios';
import { Queue, Worker } from 'bullmq';
import http from 'node:http';

export async function bullmqAxios(redisUrl, url, total, concurrency, body) {
  const connection = { url: redisUrl };
  const name = `baseline-${Date.now()}`;
  const queue = new Queue(name, { connection });
  const client = axios.create({
    httpAgent: new http.Agent({ keepAlive: true, maxSockets: concurrency }),
    timeout: 30_000,
  });
  for (let i = 0; i < total; i += 1_000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1_000, total - i) }, () => ({
        name: 'post',
        data: { body },
        opts: { removeOnComplete: true, attempts: 5 },
      })),
    );
  }
  let done = 0;
  let finished;
  const all = new Promise((r) => (finished = r));
  const t0 = performance.now();
  const worker = new Worker(
    name,
    async (job) => {
      await client.post(url, job.data.body, { headers: { 'content-type': 'application/json' } });
      if (++done === total) finished();
    },
    { connection, concurrency },
  );
  await all;
  const seconds = (performance.now() - t0) / 1000;
  await worker.close();
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  return total / seconds;
}
