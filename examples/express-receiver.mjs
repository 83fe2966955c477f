// A webhook receiver with Express. Run from the repository after `npm install`:
//   PORT=4000 WEBHOOK_SECRET=your-webhook-secret HERALD_WEBHOOK_SECRET=whsec_… node examples/express-receiver.mjs
import express from 'express';
import { verifyWebhook } from 'herald/verify';

const app = express();
const seenIds = new Set();
const latestSequence = new Map();

// express.raw keeps the exact bytes that were signed; express.json would re-serialize them.
app.post('/webhooks/video-complete', express.raw({ type: 'application/json' }), (req, res) => {
  if (req.headers.authorization !== `Bearer ${process.env.WEBHOOK_SECRET}`) return res.status(401).send('Unauthorized');
  let event;
  try {
    event = verifyWebhook(process.env.HERALD_WEBHOOK_SECRET, req.headers, req.body);
  } catch (err) {
    return res.status(400).send(`bad signature: ${err.reason}`);
  }
  const id = req.headers['webhook-id'];
  if (seenIds.has(id)) return res.status(200).send('duplicate');
  seenIds.add(id);
  const last = latestSequence.get(event.task_id) ?? 0;
  if (event.status === 'processing' && event.sequence < last) return res.status(200).send('stale');
  latestSequence.set(event.task_id, Math.max(last, event.sequence));

  if (event.status === 'completed') console.log(`completed ${event.task_id}: ${event.video_url ?? event.image_url}`);
  else if (event.status === 'processing')
    console.log(`progress ${event.task_id}: ${event.progress_percentage}% ${event.message}`);
  else console.log(`${event.status} ${event.task_id}: ${event.error}`);
  res.status(200).send('OK');
});

const port = Number(process.env.PORT ?? 4000);
app.listen(port, '127.0.0.1', () => console.log(`express receiver listening on http://127.0.0.1:${port}`));
