#!/usr/bin/env node
// node bench/worker-cycles.mjs [tasks=3000] [workers=32] [sqlite|postgres] [runs=1]: only the lease → complete
// cycles of `--only=workers` (no BullMQ, no latency measure), with CPU per cycle counted apart for Herald (all its
// threads, from /proc) and for the bench's SDK workers (this process), so that builds can be compared on a machine
// whose wall-clock figures move with its neighbours. Prints one JSON line per run, with the load average.
import os from 'node:os';
import { createDatabase, heraldEnv, startHerald, startRedis, tempDir } from './lib.mjs';
import { cycles, poster, WORKER_TOKEN } from './workers.mjs';

const [tasks, workers, kind, runs] = [
  Number(process.argv[2] ?? 3000),
  Number(process.argv[3] ?? 32),
  process.argv[4] ?? 'sqlite',
  Number(process.argv[5] ?? 1),
];
const redis = await startRedis();
for (let run = 0; run < runs; run++) {
  const tmp = tempDir();
  const db = await createDatabase(kind, tmp.dir);
  const env = heraldEnv(db, redis, tmp.dir, {
    QUEUE_PREFIX: `bcyc${run}`,
    SHUTDOWN_GRACE_MS: '500',
    MODEL_ROUTES: 'bench-*=workers,*=simulator',
    BOOTSTRAP_WORKER_TOKEN: WORKER_TOKEN,
  });
  const herald = await startHerald(env);
  const client = poster(herald.base, env.BOOTSTRAP_API_KEY, 64);
  const r = await cycles(herald, client, tasks, workers);
  console.log(JSON.stringify({ kind, ...r, load: os.loadavg()[0].toFixed(1) }));
  client.close();
  await herald.stop();
  await db.drop();
  tmp.remove();
}
await redis.stop?.();
process.exit(0);
