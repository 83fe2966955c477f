import { Cluster, Redis, RedisOptions } from 'ioredis';
import type { HeraldConfig } from '../config/config.js';
import { nodeName, type RedisClusterTarget } from '../config/cluster-nodes.js';

// Reconnect with capped backoff forever: a Redis restart must not take Herald down.
const retryStrategy = (times: number) => Math.min(200 * 2 ** Math.min(times, 6), 5_000);

/** One Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES): every client Herald opens is one of these. */
export type RedisClient = Redis | Cluster;
type RedisTarget = Pick<HeraldConfig, 'redisUrl' | 'redisCluster'>;

/** How one client behaves while Redis is away: queue commands (the default) or fail them at once. */
export interface ClientOptions {
  maxRetriesPerRequest?: number | null;
  enableOfflineQueue?: boolean;
}

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

/**
 * A cluster client. Commands caught by a failover (the master gone, its replica not yet promoted) are retried
 * every 200 ms up to 16 times while ioredis refreshes the slot map; the cluster itself is reconnected forever.
 * Reads go to masters: Herald reads what it has just written.
 */
function clusterClient(target: RedisClusterTarget, options: ClientOptions): Cluster {
  return new Cluster(target.nodes, {
    clusterRetryStrategy: retryStrategy,
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    scaleReads: 'master',
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    // With TLS the certificate names the host, so nodes are reached by the names the cluster announces.
    ...(target.tls
      ? {
          dnsLookup: (address: string, callback: (err: Error | null, address: string) => void) =>
            callback(null, address),
        }
      : {}),
    redisOptions: {
      username: target.username,
      password: target.password,
      tls: target.tls ? {} : undefined,
      ...('maxRetriesPerRequest' in options ? { maxRetriesPerRequest: options.maxRetriesPerRequest } : {}),
    },
  });
}

/** Opens a client to Herald's Redis, whichever kind the configuration names. Errors are the caller's to log. */
export function createRedisClient(target: RedisTarget, options: ClientOptions = {}): RedisClient {
  const client = target.redisCluster
    ? clusterClient(target.redisCluster, options)
    : new Redis({ ...redisOptionsFromUrl(target.redisUrl), ...options });
  client.on('error', () => undefined);
  return client;
}

/**
 * What BullMQ connects with. It opens its own connections to one Redis from options, but cannot open a cluster:
 * then it gets a cluster client, shared by every queue and worker (each worker duplicates it for its blocking
 * reads), which its owner closes after them. BullMQ's workers need commands to wait out an outage.
 */
export function bullConnection(target: RedisTarget): RedisOptions | Cluster {
  if (target.redisCluster) return createRedisClient(target, { maxRetriesPerRequest: null }) as Cluster;
  return redisOptionsFromUrl(target.redisUrl);
}

export function redactRedisUrl(text: string): string {
  return text.replace(/\/\/([^:@/]*):([^@/]*)@/, '//$1:***@');
}

async function probe(options: RedisOptions, timeoutMs: number, check: (client: Redis) => Promise<void>): Promise<void> {
  const client = new Redis({
    ...options,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await check(client);
  } finally {
    client.disconnect();
  }
}

/**
 * Fails fast with a message saying what to do when Redis cannot be reached at start-up. In cluster mode every seed
 * node must answer and be a cluster node: a wrong entry is named rather than silently skipped.
 */
export async function assertRedisReachable(target: RedisTarget, timeoutMs = 3_000): Promise<void> {
  const cluster = target.redisCluster;
  if (!cluster) {
    try {
      await probe(redisOptionsFromUrl(target.redisUrl), timeoutMs, async (c) => void (await c.ping()));
    } catch (err) {
      throw new Error(
        `Cannot reach Redis at ${redactRedisUrl(target.redisUrl)} (${(err as Error).message}). ` +
          'Herald needs Redis for its queues: start one with `redis-server` (or `docker run -p 6379:6379 redis:7`), or set REDIS_URL.',
        { cause: err },
      );
    }
    return;
  }
  await Promise.all(
    cluster.nodes.map(async (node) => {
      let enabled = true;
      try {
        await probe(
          { ...node, username: cluster.username, password: cluster.password, tls: cluster.tls ? {} : undefined },
          timeoutMs,
          async (c) => {
            enabled = /cluster_enabled:1/.test(await c.info('cluster'));
          },
        );
      } catch (err) {
        throw new Error(
          `Cannot reach the Redis Cluster node ${nodeName(node)} named in REDIS_CLUSTER_NODES (${(err as Error).message}).`,
          { cause: err },
        );
      }
      if (!enabled)
        throw new Error(
          `Redis at ${nodeName(node)} named in REDIS_CLUSTER_NODES is not a cluster node (cluster-enabled no): use REDIS_URL for a single Redis.`,
        );
    }),
  );
}
