import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { redisOptionsFromUrl } from '../redis/redis-options.js';
import { RedisConnection } from '../redis/redis.module.js';

export interface TaskSignal {
  taskId: string;
  sequence: number;
  status: string;
}

type Listener = (signal: TaskSignal) => void;

/** "A worker-routed task is ready for a lease": sent on create, retry and whenever a lease is given back. */
export interface WorkSignal {
  model: string;
  kind: string;
}
type WorkListener = (signal: WorkSignal) => void;

/**
 * Redis pub/sub that tells every process "task X has new events". It carries only a hint: listeners read the
 * events themselves from the database, so a lost message costs latency, never data.
 */
@Injectable()
export class EventBus implements OnApplicationShutdown {
  private readonly logger = new Logger('EventBus');
  private subscriber: Redis | undefined;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly prefix: string;
  private readonly workChannel: string;
  private readonly workListeners = new Set<WorkListener>();
  private workSubscribed: Promise<void> | undefined;

  constructor(
    private readonly redis: RedisConnection,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.prefix = `${config.queuePrefix}:task-events:`;
    this.workChannel = `${config.queuePrefix}:work-available`;
  }

  publishWork(signal: WorkSignal): void {
    this.redis.client.publish(this.workChannel, JSON.stringify(signal)).catch((err: Error) => this.logger.debug(`publish failed: ${err.message}`));
  }

  /**
   * Calls `listener` for every work signal (long-polling workers) until `stop`. `ready` resolves once Redis has
   * confirmed the subscription, so a look at the queue after it cannot miss a signal sent in between. The channel
   * stays subscribed once asked for: one channel per process.
   */
  subscribeWork(listener: WorkListener): { ready: Promise<void>; stop: () => void } {
    const sub = this.connect();
    this.workSubscribed ??= sub.subscribe(this.workChannel).then(
      () => undefined,
      (err: Error) => {
        this.workSubscribed = undefined;
        this.logger.debug(`subscribe failed: ${err.message}`);
      },
    );
    this.workListeners.add(listener);
    return { ready: this.workSubscribed, stop: () => void this.workListeners.delete(listener) };
  }

  publish(signal: TaskSignal): void {
    this.redis.client.publish(this.prefix + signal.taskId, JSON.stringify(signal)).catch((err: Error) => this.logger.debug(`publish failed: ${err.message}`));
  }

  /** Calls `listener` for each signal about the task until the returned function is called. */
  subscribe(taskId: string, listener: Listener): () => void {
    const sub = this.connect();
    let set = this.listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.listeners.set(taskId, set);
      sub.subscribe(this.prefix + taskId).catch((err: Error) => this.logger.debug(`subscribe failed: ${err.message}`));
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(taskId);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.listeners.delete(taskId);
        sub.unsubscribe(this.prefix + taskId).catch(() => undefined);
      }
    };
  }

  private connect(): Redis {
    if (this.subscriber) return this.subscriber;
    const sub = new Redis({ ...redisOptionsFromUrl(this.config.redisUrl), maxRetriesPerRequest: null });
    sub.on('error', () => undefined);
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.workChannel) {
        let work: WorkSignal;
        try {
          work = JSON.parse(message) as WorkSignal;
        } catch {
          return;
        }
        for (const listener of [...this.workListeners]) listener(work);
        return;
      }
      const taskId = channel.slice(this.prefix.length);
      let signal: TaskSignal;
      try {
        signal = JSON.parse(message) as TaskSignal;
      } catch {
        return;
      }
      for (const listener of this.listeners.get(taskId) ?? []) listener(signal);
    });
    this.subscriber = sub;
    return sub;
  }

  onApplicationShutdown(): void {
    this.subscriber?.disconnect();
  }
}
