#!/usr/bin/env node
// Renders docs/RELIABILITY.md from the figures the fault suite appended to reports/reliability.jsonl
// (latest run of each scenario). Usage: npm run test:fault && node scripts/reliability-report.mjs
import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

const lines = readFileSync('reports/reliability.jsonl', 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const latest = new Map();
for (const l of lines) latest.set(l.scenario, l);
const commit = execSync('git rev-parse --short HEAD').toString().trim();
const rows = [...latest.values()].map((r) => {
  const { scenario, at, db, ...figures } = r;
  return `| ${scenario} | ${db} | ${Object.entries(figures)
    .map(([k, v]) => `${k.replaceAll('_', ' ')} = **${v}**`)
    .join(', ')} | ${at.slice(0, 16).replace('T', ' ')} |`;
});

const doc = `# Reliability and security

Herald promises what Stripe and Svix users assume: **nothing lost, nothing leaked**. The fault suite
(\`npm run test:fault\`, run by \`.ci/run\`) proves it with real processes, a private \`redis-server\` per test, a real
receiver on 127.0.0.1 and injected faults. This page is generated from its latest run by
\`node scripts/reliability-report.mjs\`.

Latest run: commit \`${commit}\`, ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.

| scenario | database | figures | run at (UTC) |
|---|---|---|---|
${rows.join('\n')}

Every scenario asserts its figures: **lost = 0** (every terminal webhook arrived), **stuck = 0** (every task
reached a terminal status exactly once), repeats carry the same \`webhook-id\`, and **0 responses ≥ 500** under
fuzzing, every error being \`application/problem+json\`.

## What each scenario does

| file | what is injected | what must hold |
|---|---|---|
| \`test/fault/crash.fault.ts\` | 1,000 tasks with webhooks; API and worker as separate processes (\`ROLE=api\`, \`ROLE=worker\`) on one SQLite file; the worker is killed with \`kill -9\` twice (a new one started each time) and Redis is \`FLUSHALL\`ed once, mid-run | every terminal webhook arrives; repeats share their webhook-id; all 1,000 tasks \`completed\` |
| \`test/e2e/webhook-crash.e2e.ts\` | \`kill -9\` of an all-in-one process and a Redis flush (SQLite and PostgreSQL) | every terminal webhook arrives |
| \`test/e2e/scale-out.e2e.ts\` | PostgreSQL, 1 API + 2 workers, 500 tasks, one worker killed | one terminal event per task, every webhook delivered |
| \`test/fault/outages.fault.ts\` | Redis stopped for 10 s and restarted empty | reads keep answering; \`/health/ready\` is 503; creates are **accepted (202) and stored**, then run when Redis is back; every delivery completes |
| | the receiver answers 503 for a while (circuit breaker off: the retry schedule is under test) | deliveries complete on schedule once it is back; those whose budget ran out are \`failed\`, listed, and succeed on redeliver |
| | SIGTERM under load | the process stops taking work, hands running generations back, lets in-flight HTTP deliveries finish and gives claimed ones not yet on the wire back, exits 0; after a restart nothing is missing |
| \`test/fault/fuzz.fault.ts\` | 10,000 generated bad requests (fast-check, fixed seed) over every route: junk JSON, wrong types, huge strings, odd content types, idempotency keys, Prefer values, mangled ids | no response ≥ 500; every error is problem+json |
| \`test/fault/security.fault.ts\` | 44 SSRF address forms (decimal, octal, hex, short, IPv4-mapped, NAT64, 6to4, Teredo, ULA, metadata…) for tasks and endpoints; a host name that resolves to loopback; another tenant's ids on 20 routes; oversized body and headers; a burst over the rate limit | 422 \`webhook_url_blocked\` for every form; the name is refused at connect time without connecting; 404 on every route; no API key, header value or endpoint secret in any response; 413 and 431; 429 with \`Retry-After\` |
| \`test/fault/key-mismatch.fault.ts\` | 100 tasks with sealed \`webhook_headers\`, the receiver down; Herald killed, then restarted with another \`ENCRYPTION_KEY\`, then from a new \`DATA_DIR\` beside the same database | both starts refused with one line naming \`ENCRYPTION_KEY\` and \`DATA_DIR\`, exit 1, no key file left in the new \`DATA_DIR\`; restarted with the right key, every pending webhook arrives with its header |
| \`test/fault/cluster.fault.ts\` | a real Redis Cluster (3 masters + 1 replica each, \`redis-server --cluster-enabled yes\`, \`--cluster-node-timeout 1000\`, joined by \`redis-cli --cluster create\`); PostgreSQL; 1 API + 2 workers (\`REDIS_CLUSTER_NODES\`); 300 tasks; then 300 more with the master serving the queue prefix's hash slot (\`CLUSTER KEYSLOT\` + \`CLUSTER NODES\`) killed with \`kill -9\` mid-run, creating tasks throughout the failover; the node holding the API's pub/sub connection killed while an SSE stream is open; seed nodes that are down or not cluster nodes | without a fault every terminal webhook arrives exactly once; with it the replica is promoted, every create during the failover is 202 (or 503 + \`Retry-After\`), every accepted task completes, repeats share their webhook-id, and SSE and \`Prefer: wait\` answer afterwards; the subscription moves to another node and the open stream still ends with \`task.completed\`; a bad seed stops start-up with one line naming it |

## Decisions

- **Redis down → creates are accepted.** The database is the source of truth: a create is answered 202 once it is
  committed, Redis answering or not (its generation job is added after the answer, waiting at most 2 s); the
  generation sweeper enqueues it once Redis is back. Reads never touch Redis. Rate limiting and the event bus fail
  open. \`/health/ready\` reports 503 so a load balancer can still drain the instance if you prefer.
- **At-least-once.** A worker killed between the receiver's 2xx and the attempt's record sends that webhook again
  with the same \`webhook-id\` (the "repeated deliveries" figure). Receivers deduplicate on it.
- **Secrets.** API keys are stored as SHA-256 and looked up by hash (no comparison of secrets in application
  code); signature checks use \`crypto.timingSafeEqual\`. Webhook header values and signing secrets are sealed with
  AES-256-GCM; they appear in no response, log line or attempt record (values are masked as \`***\`).
- **Wrong key → refuse to start.** The database keeps a check value of its encryption key; a start with another
  key (or with a freshly generated one in a new \`DATA_DIR\`) is refused in one line before anything runs, rather
  than sealing new secrets with it while every stored one fails to open. A delivery that still cannot be prepared
  (a damaged sealed value) or that undici refuses to send fails at its first attempt, with the reason in its
  attempt log, instead of going back to the queue.
- **Redis Cluster failover.** While a master is gone (about the node timeout plus an election: ~3 s with
  \`cluster-node-timeout 1000\`), commands to its slots are retried every 200 ms by the cluster client while it
  refreshes the slot map, and creates still commit to the database and answer 202 (their jobs are added once the
  replica answers, or by the sweeper). Writes the dead master had acknowledged but not yet replicated are lost from
  Redis, as after a flush: the sweepers re-enqueue those tasks and deliveries from the database.
- **Limits.** Request bodies: \`BODY_LIMIT_BYTES\` (1 MiB) → 413; request headers: Node's 16 KiB → 431; 
  \`RATE_LIMIT_PER_SECOND\` (1,000) per API key, shared by every API process through Redis → 429 with \`Retry-After\`.
`;
writeFileSync('docs/RELIABILITY.md', doc);
console.log(`docs/RELIABILITY.md: ${rows.length} scenarios`);
