import { Redis, RedisOptions } from 'ioredis';

// Reconnect with capped backoff forever: a Redis restart must not take Herald down.
const retryStrategy = (times: number) => Math.min(200 * 2 ** Math.min(times, 6), 5_000);

/**
 * Sentinel form: `redis+sentinel://[user:pass@]host1:26379,host2:26379/<master name>[/<db>]`. The password is
 * the master's; sentinels themselves are reached without one.
 */
function sentinelOptions(text: string): RedisOptions {
  const match = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/]+)\/([^/]+)(?:\/(\d+))?$/.exec(text);
  if (!match) throw new Error(`"${text}" is not redis+sentinel://host:port[,host:port…]/<master name>[/<db>]`);
  const [, user, pass, hosts, name, db] = match;
  return {
    sentinels: hosts.split(',').map((h) => {
      const [host, port] = h.split(':');
      return { host, port: port ? Number(port) : 26379 };
    }),
    name: decodeURIComponent(name),
    username: user ? decodeURIComponent(user) : undefined,
    password: pass ? decodeURIComponent(pass) : undefined,
    db: db ? Number(db) : 0,
    retryStrategy,
    sentinelRetryStrategy: retryStrategy,
  };
}

/** ioredis options from a redis://, rediss:// (TLS) or redis+sentinel:// URL (user, password, db in the path). */
export function redisOptionsFromUrl(text: string): RedisOptions {
  if (text.startsWith('redis+sentinel://')) return sentinelOptions(text);
  const url = new URL(text);
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 6379,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number.isInteger(db) ? db : 0,
    tls: url.protocol === 'rediss:' ? {} : undefined,
    retryStrategy,
  };
}

export function redactRedisUrl(text: string): string {
  return text.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@');
}

/** Fails fast with a message saying what to do when Redis cannot be reached at start-up. */
export async function assertRedisReachable(redisUrl: string, timeoutMs = 3_000): Promise<void> {
  const client = new Redis({ ...redisOptionsFromUrl(redisUrl), lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    // eslint-disable-next-line preserve-caught-error -- the message carries the cause; a stack of ioredis internals would not help
    throw new Error(
      `Cannot reach Redis at ${redactRedisUrl(redisUrl)} (${(err as Error).message}). ` +
        'Herald needs Redis for its queues: start one with `redis-server` (or `docker run -p 6379:6379 redis:7`), or set REDIS_URL.',
    );
  } finally {
    client.disconnect();
  }
}
