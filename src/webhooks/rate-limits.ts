import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { RedisConnection } from '../redis/redis.module.js';

/** One rate a delivery is held to: a Redis key shared by every worker, and the spacing between two requests. */
export interface RateBucket {
  key: string;
  intervalMs: number;
}

/**
 * The rates one delivery is held to: its endpoint's `rate_limit_per_second`, and WEBHOOK_HOST_RATE_LIMIT_PER_SECOND
 * for its host (host and port: one receiver), whichever are set.
 */
// Requests are spaced this much wider than the limit's interval (20/s → one per 52.5 ms, 19/s): a receiver counts
// them by when it reads them, and a request it reads late (its event loop busy) lands next to the one after it.
// Without the margin, limit 20/s gave 21–22 in the busiest clock second of the e2e test (receiver and Herald in
// one process); the margin absorbs ~50 ms of such lateness between the first and the last of a second's requests.
export const SPACING_MARGIN = 1.05;

export function rateBuckets(
  prefix: string,
  url: string,
  endpoint: { id: string; rateLimitPerSecond: number | null } | undefined,
  hostPerSecond: number | null,
): RateBucket[] {
  const buckets: RateBucket[] = [];
  if (endpoint?.rateLimitPerSecond)
    buckets.push({
      key: `${prefix}:rate:endpoint:${endpoint.id}`,
      intervalMs: (1_000 / endpoint.rateLimitPerSecond) * SPACING_MARGIN,
    });
  if (hostPerSecond)
    buckets.push({
      key: `${prefix}:rate:host:${new URL(url).host}`,
      intervalMs: (1_000 / hostPerSecond) * SPACING_MARGIN,
    });
  return buckets;
}

/**
 * GCRA without burst: a request may go when its bucket's theoretical arrival time has come; it then moves on by
 * one interval. Answers 0 (go; `tat` is the bucket's new value) or how long to wait. The Lua script below is this
 * function, applied to every bucket of a request at once.
 */
export function gcra(tat: number, now: number, intervalMs: number): { waitMs: number; tat: number } {
  const at = Math.max(tat, now);
  if (at > now) return { waitMs: at - now, tat };
  return { waitMs: 0, tat: at + intervalMs };
}

/** What the script answers a request: it goes in `inMs` (its slot is taken for it), or is held for `heldMs`. */
export type RateAnswer = { inMs: number } | { heldMs: number };

/**
 * One call of the script for many requests. A request whose slot comes within `horizonMs` takes that slot (the
 * bucket moves on by one interval), and is sent when it comes: a reservation, so that the next slot does not wait
 * for a held delivery's job to come back and be claimed again (with those round trips, 20/s gave ~8/s). One whose
 * slot is further off is held: told to come back when its place in line is within the horizon — the n-th held
 * request of a bucket in the call is n intervals further back, so that held deliveries return one slot apart
 * rather than all at once (a place in line is a forecast; only a reservation moves the bucket). The Lua script
 * below is this function.
 */
export function takeAll(
  tats: Map<string, number>,
  now: number,
  horizonMs: number,
  requests: ReadonlyArray<readonly RateBucket[]>,
): RateAnswer[] {
  const inLine = new Map<string, number>();
  return requests.map((buckets) => {
    const tat = (b: RateBucket) => Math.max(tats.get(b.key) ?? 0, now);
    const wait = Math.max(0, ...buckets.map((b) => tat(b) + (inLine.get(b.key) ?? 0) - now));
    if (wait <= horizonMs) {
      for (const b of buckets) tats.set(b.key, now + wait + b.intervalMs);
      return { inMs: Math.ceil(wait) };
    }
    for (const b of buckets) inLine.set(b.key, (inLine.get(b.key) ?? 0) + b.intervalMs);
    return { heldMs: Math.ceil(wait - horizonMs) };
  });
}

// KEYS: every bucket. ARGV: the number of requests, the horizon in ms, then per request its bucket count and, per
// bucket, the key's index and the interval in ms. Redis's clock is the one clock all workers share. Answers per
// request the ms until its slot (>= 0, taken) or minus the ms to come back after (held): see takeAll.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local p = 3
local out = {}
local line = {}
for r = 1, n do
  local nb = tonumber(ARGV[p]); p = p + 1
  local wait = 0
  local list = {}
  for b = 1, nb do
    local key = KEYS[tonumber(ARGV[p])]; local iv = tonumber(ARGV[p + 1]); p = p + 2
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local at = tat + (line[key] or 0)
    if at - now > wait then wait = at - now end
    list[b] = { key, iv }
  end
  if wait <= horizon then
    for b = 1, nb do
      local e = list[b]
      redis.call('SET', e[1], tostring(now + wait + e[2]), 'PX', math.ceil(wait + e[2]) + 1000)
    end
    out[r] = math.ceil(wait)
  else
    for b = 1, nb do
      local e = list[b]
      line[e[1]] = (line[e[1]] or 0) + e[2]
    end
    out[r] = -math.ceil(wait - horizon)
  end
end
return out
`;

// KEYS: a request's buckets' `:sent` keys. ARGV: their intervals. Answers 0 (go now; the time is noted) or the ms
// until the last request sent to each bucket is one interval old (see DeliveryRateLimits.spaceOut).
const SPACE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local wait = 0
for i = 1, #KEYS do
  local last = tonumber(redis.call('GET', KEYS[i]) or '-1e18')
  local left = tonumber(ARGV[i]) - (now - last)
  if left > wait then wait = left end
end
if wait == 0 then
  for i = 1, #KEYS do redis.call('SET', KEYS[i], tostring(now), 'PX', math.ceil(tonumber(ARGV[i])) + 1000) end
end
return math.ceil(wait)
`;

// How far ahead a delivery may take its slot: it is claimed now and sent when the slot comes, so this stays well
// inside the sweeper's margin for a claim (the webhook timeout plus 5 s).
export const RESERVE_HORIZON_MS = 1_000;

/** The rate limits of deliveries, in Redis so that every worker process spends from the same buckets. */
@Injectable()
export class DeliveryRateLimits {
  readonly hostPerSecond: number | null;
  readonly prefix: string;
  private readonly lines = new Map<string, Promise<void>>();

  constructor(
    private readonly redis: RedisConnection,
    @Inject(CONFIG) config: HeraldConfig,
  ) {
    this.hostPerSecond = config.webhook.hostRateLimitPerSecond;
    this.prefix = config.queuePrefix;
  }

  /** Takes a slot for each request whose slot comes within the horizon; holds the others (see takeAll). */
  async take(requests: ReadonlyArray<readonly RateBucket[]>, horizonMs = RESERVE_HORIZON_MS): Promise<RateAnswer[]> {
    if (requests.length === 0) return [];
    const keys: string[] = [];
    const index = new Map<string, number>();
    const argv: Array<string | number> = [requests.length, horizonMs];
    for (const buckets of requests) {
      argv.push(buckets.length);
      for (const b of buckets) {
        if (!index.has(b.key)) index.set(b.key, keys.push(b.key));
        argv.push(index.get(b.key)!, b.intervalMs);
      }
    }
    const answer = (await this.redis.client.eval(TAKE, keys.length, ...keys, ...argv)) as number[];
    return answer.map((a) => (Number(a) >= 0 ? { inMs: Number(a) } : { heldMs: -Number(a) }));
  }

  /**
   * Right before a request to rate-limited buckets leaves: waits until the last request to each has been sent one
   * interval ago. Slots are taken ahead (take), and a send that runs late (a busy event loop, a wait for the wire)
   * would otherwise leave close behind the one before it, so that more than the limit fall into one clock second;
   * spaced by their actual send times, `rate` requests span a whole second. This process's requests to the same
   * buckets wait in one line (only its head asks Redis); the lines of other processes meet in the script.
   */
  spaceOut(buckets: readonly RateBucket[]): Promise<void> {
    if (buckets.length === 0) return Promise.resolve();
    const key = buckets.map((b) => b.key).join(' ');
    const turn = (this.lines.get(key) ?? Promise.resolve()).then(() => this.spaceOutNow(buckets));
    const line = turn.catch(() => undefined);
    this.lines.set(key, line);
    void line.then(() => {
      if (this.lines.get(key) === line) this.lines.delete(key);
    });
    return turn;
  }

  private async spaceOutNow(buckets: readonly RateBucket[]): Promise<void> {
    const until = Date.now() + SPACE_OUT_FOR_MS;
    while (Date.now() < until) {
      const wait = Number(
        await this.redis.client.eval(
          SPACE,
          buckets.length,
          ...buckets.map((b) => `${b.key}:sent`),
          ...buckets.map((b) => b.intervalMs),
        ),
      );
      if (wait <= 0) return;
      await sleep(wait);
    }
  }
}

// Bounds the wait of spaceOut (then the request goes): far more than a line of requests to one bucket takes.
const SPACE_OUT_FOR_MS = 10_000;
