#!/usr/bin/env node
// The same worker as `herald worker --module gen.mjs`, written against the SDK directly, for programs that embed a
// worker. HERALD_URL, HERALD_WORKER_TOKEN and HERALD_MODELS (comma list) configure it.
import { runWorker } from 'herald/worker';
import generate from './gen.mjs';

const worker = runWorker({
  url: process.env.HERALD_URL ?? 'http://localhost:3000',
  token: process.env.HERALD_WORKER_TOKEN,
  models: (process.env.HERALD_MODELS ?? 'flux-dev').split(','),
  concurrency: Number(process.env.CONCURRENCY ?? 1),
  handler: async (job, ctx) => {
    ctx.signal.addEventListener('abort', () => console.log(`job ${job.task_id} aborted: ${ctx.signal.reason.reason}`));
    return generate(job, ctx);
  },
});
console.log('node worker ready');
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => worker.stop().then(() => process.exit(0)));
