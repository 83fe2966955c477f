// One process of WebSocket subscribers for the streams benchmark (bench/run.mjs --only=streams). Opens N
// connections to /v1/events/ws, follows the whole tenant, and keeps a millisecond histogram of event commit →
// receipt for events created within [from, to]. Prints "ready" once all are subscribed, and the result on "report".
import { WebSocket } from 'ws';

const [base, key, count, from, to] = process.argv.slice(2);
const N = Number(count);
const hist = new Uint32Array(60_001);
let received = 0;
let outOfOrder = 0;
let closed = 0;
const perClient = new Uint32Array(N);
const CREATED = /"created_at":"([^"]+)"/;
const CURSOR = /"cursor":"(\d+)"/;

let subscribed = 0;
for (let i = 0; i < N; i++) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/events/ws`, { headers: { authorization: `Bearer ${key}` }, perMessageDeflate: false });
  let last = '';
  ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', task_ids: '*' })));
  ws.on('message', (data) => {
    const now = Date.now();
    const text = data.toString();
    if (text.startsWith('{"type":"subscribed"')) {
      if (++subscribed === N) process.stdout.write('ready\n');
      return;
    }
    if (!text.startsWith('{"type":"event"')) return;
    received++;
    perClient[i]++;
    const cursor = CURSOR.exec(text)[1];
    if (cursor <= last) outOfOrder++;
    last = cursor;
    const created = Date.parse(CREATED.exec(text)[1]);
    if (created >= Number(from) && created < Number(to)) hist[Math.min(60_000, Math.max(0, now - created))]++;
  });
  ws.on('close', () => closed++);
  ws.on('error', () => undefined);
}

process.stdin.on('data', (d) => {
  if (!String(d).includes('report')) return;
  const sorted = [...perClient].sort((a, b) => a - b);
  const sparse = [];
  hist.forEach((n, ms) => n && sparse.push([ms, n]));
  process.stdout.write(JSON.stringify({ hist: sparse, received, outOfOrder, closed, minPerClient: sorted[0], maxPerClient: sorted[sorted.length - 1] }) + '\n');
  process.exit(0);
});
