import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { createRedisClient, type RedisClient } from '../redis/redis-options.js';
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
  private subscriber: RedisClient | undefined;
  // Keyed by the whole channel name: one task's channel, or one tenant's (the tenant-wide streams).
  private readonly listeners = new Map<string, Set<(message: string) => void>>();
  private readonly prefix: string;
  private readonly workChannel: string;
  private readonly tenantPrefix: string;

  constructor(
    private readonly redis: RedisConnection,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.prefix = `${config.queuePrefix}:task-events:`;
    this.workChannel = `${config.queuePrefix}:work-available`;
    this.tenantPrefix = `${config.queuePrefix}:tenant-events:`;
  }

  publishWork(signal: WorkSignal): void {
    this.send(this.workChannel, JSON.stringify(signal));
  }

  /**
   * Calls `listener` for every work signal (long-polling workers) until `stop`. `ready` resolves once Redis has
   * confirmed the subscription, so a look at the queue after it cannot miss a signal sent in between.
   */
  subscribeWork(listener: WorkListener): { ready: Promise<void>; stop: () => void } {
    let ready!: Promise<void>;
    const stop = this.listen(
      this.workChannel,
      (message) => {
        const work = parsed<WorkSignal>(message);
        if (work) listener(work);
      },
      (p) => {
        ready = p;
      },
    );
    return { ready, stop };
  }

  publish(signal: TaskSignal): void {
    this.send(this.prefix + signal.taskId, JSON.stringify(signal));
  }

  private readonly tenantsDue = new Set<string>();

  /**
   * "The tenant has new events": wakes the tenant-wide streams of every process, which read them from the database.
   * A round of changes commits many tasks of a tenant at once: their signals go out as one PUBLISH per tenant,
   * just after the current callbacks (the readers read everything after their head anyway).
   */
  publishTenant(tenantId: string): void {
    if (this.tenantsDue.size === 0) {
      setImmediate(() => {
        const due = [...this.tenantsDue];
        this.tenantsDue.clear();
        for (const id of due) this.send(this.tenantPrefix + id, '1');
      });
    }
    this.tenantsDue.add(tenantId);
  }

  /** Calls `listener` for each signal about the task until the returned function is called. */
  subscribe(taskId: string, listener: Listener): () => void {
    return this.listen(this.prefix + taskId, (message) => {
      const signal = parsed<TaskSignal>(message);
      if (signal) listener(signal);
    });
  }

  /**
   * Calls `listener` on each of the tenant's signals until the returned function is called. The promise settles once
   * Redis has confirmed the subscription: a commit after that is signalled to this process.
   */
  subscribeTenant(tenantId: string, listener: () => void): { ready: Promise<void>; unsubscribe: () => void } {
    let ready!: Promise<void>;
    const unsubscribe = this.listen(
      this.tenantPrefix + tenantId,
      () => listener(),
      (p) => void (ready = p),
    );
    return { ready, unsubscribe };
  }

  // The publishes asked for in one go (a round's committed tasks, each a PUBLISH) leave as one pipeline, in order:
  // one write to Redis's socket instead of one each.
  private outgoing: Array<[channel: string, message: string]> = [];

  private send(channel: string, message: string): void {
    if (this.outgoing.push([channel, message]) === 1) queueMicrotask(() => this.flush());
  }

  private flush(): void {
    const batch = this.outgoing;
    this.outgoing = [];
    const failed = (err: Error) => this.logger.debug(`publish failed: ${err.message}`);
    // A cluster's pipeline must keep to one node's slots: there each PUBLISH goes on its own, as before.
    if (batch.length === 1 || this.redis.client.isCluster) {
      for (const [channel, message] of batch) this.redis.client.publish(channel, message).catch(failed);
      return;
    }
    const pipeline = this.redis.client.pipeline();
    for (const [channel, message] of batch) pipeline.publish(channel, message);
    pipeline.exec().catch(failed);
  }

  private readonly pending = new Map<string, Promise<void>>();

  private listen(
    channel: string,
    listener: (message: string) => void,
    onReady?: (ready: Promise<void>) => void,
  ): () => void {
    const sub = this.connect();
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
    }
    if (!this.pending.has(channel)) {
      // A subscription that failed is asked for again by the next listener.
      const ready: Promise<void> = sub.subscribe(channel).then(
        () => undefined,
        (err: Error) => {
          if (this.pending.get(channel) === ready) this.pending.delete(channel);
          this.logger.debug(`subscribe failed: ${err.message}`);
        },
      );
      this.pending.set(channel, ready);
    }
    onReady?.(this.pending.get(channel) ?? Promise.resolve());
    set.add(listener);
    return () => {
      const current = this.listeners.get(channel);
      if (!current) return;
      current.delete(listener);
      // The work channel stays subscribed: every lease request listens to it, and each would otherwise wait for
      // a SUBSCRIBE before its first look whenever no other request happened to be waiting.
      if (current.size === 0 && channel !== this.workChannel) {
        this.listeners.delete(channel);
        this.pending.delete(channel);
        sub.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  private connect(): RedisClient {
    if (this.subscriber) return this.subscriber;
    const sub = createRedisClient(this.config, { maxRetriesPerRequest: null });
    sub.on('message', (channel: string, message: string) => {
      for (const listener of this.listeners.get(channel) ?? []) listener(message);
    });
    this.subscriber = sub;
    return sub;
  }

  onApplicationShutdown(): void {
    this.subscriber?.disconnect();
  }
}

/** A signal's JSON, or undefined when it is not JSON (signals are hints: a bad one is dropped). */
function parsed<T>(message: string): T | undefined {
  try {
    return JSON.parse(message) as T;
  } catch {
    return undefined;
  }
}
