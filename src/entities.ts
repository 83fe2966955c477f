import { ApiKey } from './auth/api-key.entity.js';
import { Tenant } from './auth/tenant.entity.js';
import { WorkerToken } from './auth/worker-token.entity.js';
import { Worker } from './workers/worker.entity.js';
import { Endpoint } from './webhooks/endpoint.entity.js';
import { IdempotencyKey } from './idempotency/idempotency-key.entity.js';
import { TaskEvent } from './tasks/task-event.entity.js';
import { Task } from './tasks/task.entity.js';
import { Delivery, DeliveryAttempt, WebhookCircuit } from './webhooks/delivery.entity.js';

/** Every table's entity. Held by the composition root, since it names every domain; database/ takes it as given. */
export const ENTITIES = [
  Tenant,
  ApiKey,
  Task,
  TaskEvent,
  Delivery,
  DeliveryAttempt,
  Endpoint,
  IdempotencyKey,
  WebhookCircuit,
  WorkerToken,
  Worker,
];
