#!/usr/bin/env node
// node bench/profile.mjs [sqlite|postgres] [n] [concurrency]: drains a preloaded outbox with Herald under
// --cpu-prof and prints the top self-time functions (the profile is kept in the printed directory).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createDatabase, heraldEnv, preloadOutbox, startHerald, startReceiver, startRedis, tempDir, until } from './lib.mjs';

const [kind = 'sqlite', n = '5000', c = '64'] = process.argv.slice(2);
const receiver = await startReceiver();
const redis = await startRedis();
const tmp = tempDir();
const db = await createDatabase(kind, tmp.dir);
const env = heraldEnv(db, redis, tmp.dir, { QUEUE_PREFIX: 'bprof', WEBHOOK_CONCURRENCY: c });
await (await startHerald(env)).stop();
await preloadOutbox(db, Number(n), receiver.url);
receiver.reset();
const profDir = path.join(tmp.dir, 'prof');
const herald = await startHerald(env, ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
await until(() => receiver.state.count >= Number(n), 600_000, 'drain');
const seconds = (receiver.state.last - receiver.state.first) / 1000;
console.log(JSON.stringify({ kind, n: Number(n), concurrency: Number(c), per_s: Math.round(Number(n) / seconds) }));
await herald.stop();
const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
const profile = JSON.parse(readFileSync(path.join(profDir, file), 'utf8'));
const self = new Map();
const dt = new Map();
profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
let total = 0;
for (const node of profile.nodes) {
  const t = dt.get(node.id) ?? 0;
  total += t;
  const f = node.callFrame;
  const key = `${f.functionName || '(anon)'} ${f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${f.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + t);
}
const pct = (t) => ((100 * t) / total).toFixed(1).padStart(5) + ' %';
for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(pct(t), k);
// Self time by package: where the process spends its CPU, coarsely.
const byPackage = new Map();
for (const node of profile.nodes) {
  const url = node.callFrame.url;
  const pkg = url.includes('node_modules/') ? url.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1') : url.includes('/dist/') ? 'herald' : url.startsWith('node:') ? 'node core' : node.callFrame.functionName || '(native)';
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + (dt.get(node.id) ?? 0));
}
console.log('-- by package');
for (const [k, t] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(pct(t), k);
console.log('profile:', path.join(profDir, file));
await db.drop();
process.exit(0);
