import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Herald's Prometheus metrics, one registry per process. Services record; /metrics exposes. */
@Injectable()
export class Metrics {
  readonly registry = new Registry();

  readonly tasksCreated = new Counter({
    name: 'herald_tasks_created_total',
    help: 'Tasks accepted, by kind',
    labelNames: ['kind'],
    registers: [this.registry],
  });
  readonly tasksFinished = new Counter({
    name: 'herald_tasks_finished_total',
    help: 'Tasks that reached a terminal status, by kind and status',
    labelNames: ['kind', 'status'],
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'herald_webhook_deliveries_total',
    help: 'Webhook deliveries that finished, by outcome (succeeded, failed, superseded)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly attempts = new Counter({
    name: 'herald_webhook_attempts_total',
    help: 'Webhook HTTP attempts, by outcome (succeeded, retry, failed)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly circuitOpenings = new Counter({
    name: 'herald_webhook_circuit_openings_total',
    help: 'Times a target URL’s circuit opened (consecutive failures, or a failed probe)',
    registers: [this.registry],
  });
  readonly deliveryLatency = new Histogram({
    name: 'herald_webhook_delivery_latency_seconds',
    help: 'From the event being committed to the receiver’s 2xx',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300, 1800, 7200],
    registers: [this.registry],
  });
  readonly attemptDuration = new Histogram({
    name: 'herald_webhook_attempt_duration_seconds',
    help: 'Duration of one webhook HTTP attempt',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly workerLeases = new Counter({
    name: 'herald_worker_leases_total',
    help: 'Worker leases by how they were given or ended (granted, completed, failed, requeued, expired, worker_lost, cancelled)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly leaseWait = new Histogram({
    name: 'herald_worker_lease_wait_seconds',
    help: 'How long a worker-routed task waited in the queue (since created or given back) before a worker leased it',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_' });
  }

  /** A gauge computed at scrape time (queue depths, outbox lag). */
  gauge(name: string, help: string, labelNames: string[], collect: (g: Gauge) => Promise<void>): void {
    if (this.registry.getSingleMetric(name)) return;
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        await collect(this).catch(() => undefined);
      },
    });
  }
}
