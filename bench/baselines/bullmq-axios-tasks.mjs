// Baseline for the end-to-end measure: the task service one would write by hand with BullMQ and axios, run as its
// own process like `herald serve`. A node:http server takes the same create body, adds a BullMQ job and answers 202
// with an id; a task worker runs each job through the same steps with the same timing, adding a webhook job per
// progress step and one for the terminal event; webhook workers POST each with axios (keep-alive agent). No
// database, no signing, no attempt log, no ordering or superseding — as bullmq-axios.mjs does for deliveries.
//
// node bench/baselines/bullmq-axios-tasks.mjs, configured by the environment: PORT, REDIS_URL, QUEUE_PREFIX,
// GENERATION_CONCURRENCY, WEBHOOK_CONCURRENCY, SIMULATOR_STEPS (Herald's names, so both get the same settings).
import axios from 'axios';
import { Queue, Worker } from 'bullmq';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const env = process.env;
const connection = { url: env.REDIS_URL };
const prefix = env.QUEUE_PREFIX ?? 'baseline';
const steps = Number(env.SIMULATOR_STEPS ?? 10);
const webhookConcurrency = Number(env.WEBHOOK_CONCURRENCY ?? 50);
const tasks = new Queue('tasks', { connection, prefix });
const webhooks = new Queue('webhooks', { connection, prefix });
const client = axios.create({
  httpAgent: new http.Agent({ keepAlive: true, maxSockets: webhookConcurrency }),
  timeout: 30_000,
});
const done = { removeOnComplete: true, removeOnFail: true };

const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.method === 'GET') return res.writeHead(200).end('ok'); // the bench's liveness probe
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString());
      const id = randomUUID();
      await tasks.add('task', { id, body }, done);
      const reply = JSON.stringify({ task_id: id, status: 'pending' });
      res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(reply) });
      res.end(reply);
    } catch {
      res.writeHead(400).end();
    }
  });
});

const payload = (id, body, percent, sequence) => {
  const finished = percent >= 100;
  const type = finished ? 'image_generation_completed' : 'image_generation_progress';
  return {
    task_id: id,
    status: finished ? 'completed' : 'processing',
    webhook_type: type,
    timestamp: new Date().toISOString(),
    ...(finished
      ? { image_url: `http://127.0.0.1/v1/artifacts/${id}-a1-0.png`, model: body.model, prompt: body.prompt }
      : { progress_percentage: percent, message: 'Rendering image' }),
    event_type: type,
    event_id: randomUUID(),
    sequence,
  };
};

const taskWorker = new Worker(
  'tasks',
  async (job) => {
    const { id, body } = job.data;
    const stepMs = (body.simulate?.duration_ms ?? 0) / steps;
    for (let i = 1; i <= steps; i++) {
      if (stepMs > 0) await sleep(stepMs);
      const percent = Math.round((i * 100) / steps);
      await webhooks.add('hook', { url: body.webhook_url, body: payload(id, body, percent, i + 1) }, done);
    }
  },
  { connection, prefix, concurrency: Number(env.GENERATION_CONCURRENCY ?? 10) },
);

const webhookWorker = new Worker(
  'webhooks',
  async (job) => {
    await client.post(job.data.url, job.data.body, { headers: { 'content-type': 'application/json' } });
  },
  { connection, prefix, concurrency: webhookConcurrency },
);

server.listen(Number(env.PORT), '127.0.0.1');
process.on('SIGTERM', async () => {
  server.close();
  await Promise.all([taskWorker.close(), webhookWorker.close()]);
  await tasks.obliterate({ force: true }).catch(() => undefined);
  await webhooks.obliterate({ force: true }).catch(() => undefined);
  process.exit(0);
});
