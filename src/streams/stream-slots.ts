import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { RedisConnection } from '../redis/redis.module.js';

// A slot lives this long unless its process renews it (every REVOCATION_CHECK_MS, 2 s): a process that dies
// without closing its streams gives their slots back within this.
export const SLOT_TTL_MS = 10_000;

// KEYS[1] the key's sorted set (member: connection, score: expiry in Redis's own clock). Drop what expired; take a
// slot when there are fewer than ARGV[1]. Answers 1 when taken.
const TAKE = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

// KEYS: sets, ARGV[1] the TTL, then one member per key: moves each live slot's expiry on.
const RENEW = `
local t = redis.call('TIME')
local expiry = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, ARGV[1])
end
return 0`;

/**
 * STREAM_MAX_CONNECTIONS_PER_KEY across every API process: one Redis sorted set of open streams per API key.
 * When Redis does not answer, a stream opens on the process's own count alone (checked first, always), as the
 * request rate limit lets requests pass: streams must not go down with Redis.
 */
@Injectable()
export class StreamSlots {
  constructor(
    private readonly redis: RedisConnection,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  private setOf(keyId: string): string {
    return `${this.config.queuePrefix}:stream-slots:${keyId}`;
  }

  /** A slot for one more stream of the key (its id, to give it back), or undefined when the key has none left. */
  async take(keyId: string): Promise<string | undefined> {
    const slot = randomUUID();
    try {
      const taken = await this.redis.client.eval(
        TAKE,
        1,
        this.setOf(keyId),
        String(this.config.streams.maxConnectionsPerKey),
        String(SLOT_TTL_MS),
        slot,
      );
      return Number(taken) === 1 ? slot : undefined;
    } catch {
      return slot;
    }
  }

  renew(slots: ReadonlyArray<{ keyId: string; slot: string }>): void {
    if (slots.length === 0) return;
    this.redis.client
      .eval(
        RENEW,
        slots.length,
        ...slots.map((s) => this.setOf(s.keyId)),
        String(SLOT_TTL_MS),
        ...slots.map((s) => s.slot),
      )
      .catch(() => undefined);
  }

  release(keyId: string, slot: string): void {
    this.redis.client.zrem(this.setOf(keyId), slot).catch(() => undefined);
  }
}
