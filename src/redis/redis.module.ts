import { Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import type { Cluster, RedisOptions } from 'ioredis';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { bullConnection, createRedisClient, type RedisClient } from './redis-options.js';

/** Herald's own Redis connection (health, event bus, rate limits), and what BullMQ connects with. */
@Injectable()
export class RedisConnection implements OnApplicationShutdown {
  readonly client: RedisClient;
  /** BullMQ's connection: options for one Redis, a shared cluster client in cluster mode (see bullConnection). */
  readonly bullmq: RedisOptions | Cluster;
  private readonly probeKey: string | undefined;

  constructor(@Inject(CONFIG) config: HeraldConfig) {
    // Commands fail fast while Redis is away instead of queueing: callers fall back to the database.
    this.client = createRedisClient(config, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    this.bullmq = bullConnection(config);
    this.probeKey = config.redisCluster ? `${config.queuePrefix}:health` : undefined;
  }

  /** Redis answers. In a cluster, the master of Herald's slot must (a PING would go to any node). */
  async ping(): Promise<void> {
    if (this.probeKey) await this.client.exists(this.probeKey);
    else await this.client.ping();
  }

  onApplicationShutdown(): void {
    this.client.disconnect();
  }

  /** After BullMQ's queues and workers have closed (they do not close a connection they were given). */
  closeBullmq(): void {
    if ('isCluster' in this.bullmq && this.bullmq.isCluster) this.bullmq.disconnect();
  }
}

@Global()
@Module({ providers: [RedisConnection], exports: [RedisConnection] })
export class RedisModule {}
