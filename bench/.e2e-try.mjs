import { e2eBench } from '/work/wt/e2ebench/bench/e2e.mjs';
import { startReceiver, startRedis } from '/work/wt/e2ebench/bench/lib.mjs';
const receiver = await startReceiver();
const redis = await startRedis();
await e2eBench({ redis, receiver, connections: Number(process.env.C ?? 64), seconds: Number(process.env.S ?? 5), warmupSeconds: 2, stepMs: Number(process.env.STEP ?? 5), rounds: Number(process.env.R ?? 1), dbKinds: (process.env.DBS ?? 'sqlite').split(','), emit: (r) => console.log(JSON.stringify(r)) });
redis.stop(); process.exit(0);
