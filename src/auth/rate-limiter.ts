import { Inject, Injectable } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { RedisConnection } from '../redis/redis.module.js';

export type RateDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

// INCR the key's counter for the current one-second window; the first hit sets its expiry.
const SCRIPT = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n`;

/**
 * Requests per API key per second, counted in Redis so every API process shares the budget. When Redis does
 * not answer, requests pass: rate limiting must never take the API down with it.
 */
@Injectable()
export class RateLimiter {
  constructor(
    private readonly redis: RedisConnection,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  async check(keyId: string, now = Date.now()): Promise<RateDecision> {
    const limit = this.config.rateLimitPerSecond;
    if (limit <= 0) return { allowed: true };
    const window = Math.floor(now / 1000);
    try {
      const count = Number(
        await this.redis.client.eval(SCRIPT, 1, `${this.config.queuePrefix}:rate:${keyId}:${window}`, '2000'),
      );
      return count <= limit ? { allowed: true } : { allowed: false, retryAfterSeconds: 1 };
    } catch {
      return { allowed: true };
    }
  }
}
