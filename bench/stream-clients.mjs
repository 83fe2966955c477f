// One process of WebSocket subscribers for the streams benchmark (bench/run.mjs --only=streams). Opens N
// connections to /v1/events/ws, subscriber i with key i % keys (so they can be spread over tenants), each following
// its key's whole tenant. Prints "ready" once all are subscribed, and the result on "report".
//
// Kept cheap, so that what is measured is Herald rather than this process: a message is not parsed. Its type and
// cursor sit at fixed offsets (`{"type":"event","cursor":"<16 digits>"`); every subscriber checks every cursor
// (strictly increasing = in order and never twice) and counts its events; the latency (receipt − the event's
// created_at) is read only from events whose cursor ends in 0 (one in ten, on every subscriber).
import { WebSocket } from 'ws';

const [base, keyList, count, from, to] = process.argv.slice(2);
const keys = keyList.split(',');
const N = Number(count);
const FROM = Number(from);
const TO = Number(to);
const hist = new Uint32Array(60_001);
let received = 0;
let outOfOrder = 0;
let closed = 0;
// Events each subscriber received (all subscribe before the first task is created: each should get all of its tenant's).
const perSubscriber = new Uint32Array(N);
const CREATED = Buffer.from('"created_at":"');
const CURSOR_AT = '{"type":"event","cursor":"'.length;

// This process's own event-loop delay: when it is large, receipt times are late because of the subscribers, not Herald.
const lag = new Uint32Array(10_001);
let tick = performance.now();
setInterval(() => {
  const now = performance.now();
  lag[Math.min(10_000, Math.max(0, Math.round(now - tick - 10)))]++;
  tick = now;
}, 10).unref();

let subscribed = 0;
for (let i = 0; i < N; i++) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/events/ws`, {
    headers: { authorization: `Bearer ${keys[i % keys.length]}` },
    perMessageDeflate: false,
  });
  let last = '';
  ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', task_ids: '*' })));
  ws.on('message', (data) => {
    // `{"type":"e` + `v`: an event (not an error).
    if (data[9] !== 0x65 || data[10] !== 0x76) {
      if (data[9] === 0x73 && ++subscribed === N) process.stdout.write('ready\n'); // "subscribed"
      return;
    }
    received++;
    perSubscriber[i]++;
    const cursor = data.toString('latin1', CURSOR_AT, CURSOR_AT + 16);
    if (cursor <= last) outOfOrder++;
    last = cursor;
    if (data[CURSOR_AT + 15] !== 0x30) return;
    const now = Date.now();
    const at = data.indexOf(CREATED, CURSOR_AT + 16) + CREATED.length;
    const created = Date.parse(data.toString('latin1', at, at + 24));
    if (created >= FROM && created < TO) hist[Math.min(60_000, Math.max(0, now - created))]++;
  });
  ws.on('close', () => closed++);
  ws.on('error', () => undefined);
}

const sparse = (h) => {
  const out = [];
  h.forEach((n, ms) => n && out.push([ms, n]));
  return out;
};

// "count" → {"received": n} (the runner waits for everything to arrive); "report" → the result, then exit.
process.stdin.on('data', (d) => {
  const text = String(d);
  if (text.includes('count')) process.stdout.write(JSON.stringify({ received }) + '\n');
  if (!text.includes('report')) return;
  process.stdout.write(
    JSON.stringify({
      hist: sparse(hist),
      lag: sparse(lag),
      received,
      outOfOrder,
      closed,
      perSubscriber: [...perSubscriber],
    }) + '\n',
  );
  process.exit(0);
});
