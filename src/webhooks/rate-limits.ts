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
export function rateBuckets(prefix: string, url: string, endpoint: { id: string; rateLimitPerSecond: number | null } | undefined, hostPerSecond: number | null): RateBucket[] {
  const buckets: RateBucket[] = [];
  if (endpoint?.rateLimitPerSecond) buckets.push({ key: `${prefix}:rate:endpoint:${endpoint.id}`, intervalMs: 1_000 / endpoint.rateLimitPerSecond });
  if (hostPerSecond) buckets.push({ key: `${prefix}:rate:host:${new URL(url).host}`, intervalMs: 1_000 / hostPerSecond });
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

// KEYS: every bucket. ARGV: the number of requests, then per request its bucket count and, per bucket, the key's
// index and the interval in ms. Redis's clock is the one clock all workers share. Answers per request 0 or the wait.
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local p = 2
local out = {}
for r = 1, n do
  local nb = tonumber(ARGV[p]); p = p + 1
  local wait = 0
  local list = {}
  for b = 1, nb do
    local key = KEYS[tonumber(ARGV[p])]; local iv = tonumber(ARGV[p + 1]); p = p + 2
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    if tat - now > wait then wait = tat - now end
    list[b] = { key, tat, iv }
  end
  if wait == 0 then
    for b = 1, nb do
      local e = list[b]
      redis.call('SET', e[1], tostring(e[2] + e[3]), 'PX', math.ceil(e[3]) + 1000)
    end
  end
  out[r] = math.ceil(wait)
end
return out
`;

/** The rate limits of deliveries, in Redis so that every worker process spends from the same buckets. */
@Injectable()
export class DeliveryRateLimits {
  readonly hostPerSecond: number | null;
  readonly prefix: string;

  constructor(
    private readonly redis: RedisConnection,
    @Inject(CONFIG) config: HeraldConfig,
  ) {
    this.hostPerSecond = config.webhook.hostRateLimitPerSecond;
    this.prefix = config.queuePrefix;
  }

  /** Takes a place for each request whose buckets all allow it now; answers per request 0 (go) or the ms to wait. */
  async take(requests: ReadonlyArray<readonly RateBucket[]>): Promise<number[]> {
    if (requests.length === 0) return [];
    const keys: string[] = [];
    const index = new Map<string, number>();
    const argv: Array<string | number> = [requests.length];
    for (const buckets of requests) {
      argv.push(buckets.length);
      for (const b of buckets) {
        if (!index.has(b.key)) index.set(b.key, keys.push(b.key));
        argv.push(index.get(b.key)!, b.intervalMs);
      }
    }
    const answer = (await this.redis.client.eval(TAKE, keys.length, ...keys, ...argv)) as number[];
    return answer.map(Number);
  }
}
