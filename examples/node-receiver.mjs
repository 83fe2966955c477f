// A webhook receiver in plain Node (no framework). Run from the repository after `npm install`:
//   PORT=4000 WEBHOOK_SECRET=your-webhook-secret HERALD_WEBHOOK_SECRET=whsec_… node examples/node-receiver.mjs
// Then create tasks with "webhook_url": "http://127.0.0.1:4000/webhooks/video-complete" and
// "webhook_headers": {"Authorization": "Bearer your-webhook-secret"}.
import http from 'node:http';
import { verifyWebhook } from 'herald/verify';

const port = Number(process.env.PORT ?? 4000);
const expectedAuth = `Bearer ${process.env.WEBHOOK_SECRET}`;
const signingSecret = process.env.HERALD_WEBHOOK_SECRET;
const seenIds = new Set(); // webhook-ids already handled: Herald delivers at least once
const latestSequence = new Map(); // task_id → highest sequence seen

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      // 1. Your own header, as in Conduit's docs (seeds/001).
      if (req.headers.authorization !== expectedAuth) return void res.writeHead(401).end('Unauthorized');
      // 2. The signature, over the raw bytes.
      let event;
      try {
        event = verifyWebhook(signingSecret, req.headers, Buffer.concat(chunks));
      } catch (err) {
        return void res.writeHead(400).end(`bad signature: ${err.reason}`);
      }
      // 3. At-least-once: a repeat carries the same webhook-id.
      const id = req.headers['webhook-id'];
      if (seenIds.has(id)) return void res.writeHead(200).end('duplicate');
      seenIds.add(id);
      // 4. Progress older than what we already know is stale.
      const last = latestSequence.get(event.task_id) ?? 0;
      if (event.status === 'processing' && event.sequence < last) return void res.writeHead(200).end('stale');
      latestSequence.set(event.task_id, Math.max(last, event.sequence));

      if (event.status === 'completed')
        console.log(`completed ${event.task_id}: ${event.video_url ?? event.image_url}`);
      else if (event.status === 'processing')
        console.log(`progress ${event.task_id}: ${event.progress_percentage}% ${event.message}`);
      else console.log(`${event.status} ${event.task_id}: ${event.error}`);
      res.writeHead(200).end('OK'); // answer fast; do slow work elsewhere
    });
  })
  .listen(port, '127.0.0.1', () => console.log(`node receiver listening on http://127.0.0.1:${port}`));
