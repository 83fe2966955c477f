import { BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, LessThan, MoreThanOrEqual } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { DomainException, ErrorCode, taskNotFound } from '../common/errors.js';
import { validationFailed } from '../common/validation.js';
import { InFlight } from '../common/in-flight.js';
import { MicroBatcher } from '../common/micro-batcher.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { parseDuration } from '../config/durations.js';
import { SecretBox } from '../crypto/secret-box.js';
import { Metrics } from '../observability/metrics.js';
import { rememberTaskTrace } from '../observability/task-traces.js';
import { insertMany, Sql, together } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { EventBus } from '../events/event-bus.js';
import { routeFor } from '../config/model-routes.js';
import type { Delivery } from '../webhooks/delivery.entity.js';
import type { Endpoint } from '../webhooks/endpoint.entity.js';
import { type OpenLanes, Outbox } from '../webhooks/outbox.js';
import { webhookTargetErrors } from '../webhooks/webhook-target.js';
import { CreateGenerationDto, KNOWN_FIELDS } from './dto/create-generation.dto.js';
import { GenerationEngine } from './generation-engine.js';
import { ListTasksQuery, RetryTaskDto } from './dto/list-tasks.query.js';
import { isCancellable, isRetryable } from './task-state.js';
import { claimCursors, countByTenant } from './event-cursor.js';
import { TaskTransitions } from './task-transitions.service.js';
import { GenerationOptions, Task, TaskKind } from './task.entity.js';

const MAX_METADATA_BYTES = 64 * 1024;
const MAX_RETRY_DELAY_MS = 7 * 86_400_000;
// A generation job's add waits this long for Redis (shutdown waits for adds in flight too); past it the task stays
// pending in the database and the sweeper enqueues it.
const ENQUEUE_WAIT_MS = 2_000;

export interface TaskPage {
  data: Task[];
  next_cursor: string | null;
}

@Injectable()
export class TasksService implements BeforeApplicationShutdown {
  private readonly logger = new Logger('Tasks');
  // Concurrent creates share one transaction (group commit); each caller still gets its own answer.
  private readonly intake = new MicroBatcher((tasks: Task[]) => this.insertBatch(tasks), 100);
  // Generation jobs being added for tasks already answered; shutdown waits for them before Redis closes.
  private readonly enqueuing = new InFlight();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly transitions: TaskTransitions,
    private readonly outbox: Outbox,
    private readonly engine: GenerationEngine,
    private readonly box: SecretBox,
    private readonly metrics: Metrics,
    private readonly bus: EventBus,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /** `traceParent`: the create request's span, when tracing is on, stored so later spans join the task's trace. */
  async create(tenantId: string, kind: TaskKind, dto: CreateGenerationDto, traceParent?: string): Promise<Task> {
    this.checkWebhookFields(dto);
    const now = new Date();
    const options: GenerationOptions = {};
    for (const key of ['duration', 'size', 'fps', 'style', 'response_format', 'user', 'seed', 'n'] as const) {
      if (dto[key] !== undefined && dto[key] !== null) (options as Record<string, unknown>)[key] = dto[key];
    }
    const params = Object.fromEntries(
      Object.entries(dto).filter(([key, value]) => !KNOWN_FIELDS.has(key) && value !== undefined),
    );
    const headers = (dto.webhook_headers ?? null) as Record<string, string> | null;
    const simulate = dto.simulate ? { ...dto.simulate } : null;
    const task = this.db.getRepository(Task).create({
      id: uuidv7(),
      tenantId,
      kind,
      status: 'pending',
      progress: 0,
      message: 'Queued',
      model: dto.model,
      prompt: dto.prompt,
      options,
      params,
      metadata: dto.webhook_metadata ?? null,
      webhookUrl: dto.webhook_url ?? null,
      webhookHeadersSealed: headers && Object.keys(headers).length ? this.box.encrypt(JSON.stringify(headers)) : null,
      webhookHeaderNames: headers ? Object.keys(headers) : null,
      webhookEvents: dto.webhook_events ?? null,
      webhookRetry: dto.webhook_retry ? { ...dto.webhook_retry } : null,
      simulate,
      timeoutSeconds: dto.timeout_seconds ?? null,
      deadlineAt: dto.timeout_seconds ? new Date(now.getTime() + dto.timeout_seconds * 1000) : null,
      estimatedDurationMs: this.engine.estimateDurationMs({ kind, simulate, options }),
      attempt: 1,
      result: null,
      error: null,
      errorCode: null,
      lastSequence: 1,
      createdAt: now,
      updatedAt: now,
      startedAt: null,
      completedAt: null,
      provider: routeFor(this.config.modelRoutes, dto.model),
      leaseId: null,
      leaseWorkerId: null,
      leaseTokenId: null,
      leaseExpiresAt: null,
      leaseCount: 0,
      traceParent: traceParent ?? null,
    });
    if (traceParent) rememberTaskTrace(task.id, traceParent);
    await this.intake.submit(task);
    // No signal on the task's channel (insertBatch signals the tenant's): nobody can be following a task whose id has not been answered yet (followers
    // subscribe, then read the events), so a PUBLISH per create would reach no one.
    this.metrics.tasksCreated.inc({ kind });
    // Answered once committed: the database is the truth, and the generation sweeper enqueues any task whose job
    // did not make it into Redis. Waiting for the add kept every create a Redis round trip longer.
    this.enqueuing.track(this.enqueue(task));
    return task;
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.enqueuing.settled();
  }

  /** New tasks, their queued events and deliveries: one transaction and a few multi-row INSERTs per batch. */
  private async insertBatch(tasks: Task[]): Promise<void[]> {
    const handOver: Delivery[] = [];
    await this.uow.run(async (em) => {
      // The tasks first: their events and deliveries reference them. Their cursors and their tenants' endpoints are
      // read alongside (one wait on SQLite; on PostgreSQL, in order, so the tenant's counter row is locked as late
      // as possible), and on SQLite their lanes, which are empty but for their URLs' circuits: then the events and
      // deliveries go with the COMMIT (Outbox.openLanes).
      const entries = tasks.map((task) => ({ task, type: 'task.queued' as const }));
      let endpoints: Map<string, Endpoint[]> | undefined;
      let lanes: OpenLanes | undefined;
      const urls = tasks.flatMap((t) => (t.webhookUrl ? [t.webhookUrl] : []));
      const [, cursors] = await together<unknown>(em, [
        () => insertMany(em, Task, tasks),
        () => claimCursors(em, countByTenant(entries)),
        async () =>
          void (endpoints = await this.outbox.endpointsOf(
            em,
            tasks.map((t) => t.tenantId),
          )),
        ...(new Sql(em.connection).postgres ? [] : [async () => void (lanes = await this.outbox.lanesOfNew(em, urls))]),
      ]);
      await this.transitions.recordEvents(em, entries, handOver, {
        endpoints,
        cursors: cursors as Map<string, number>,
        lanes,
      });
    });
    this.outbox.handOver(handOver);
    // Tenant-wide streams are followed before any task id is known: one signal per tenant of the batch.
    for (const tenantId of new Set(tasks.map((t) => t.tenantId))) this.transitions.announce(tenantId);
    return tasks.map(() => undefined);
  }

  async get(tenantId: string, id: string, kind?: TaskKind): Promise<Task> {
    const task = await this.db.getRepository(Task).findOneBy({ id, tenantId });
    if (!task || (kind && task.kind !== kind)) throw taskNotFound(id);
    return task;
  }

  async list(tenantId: string, query: ListTasksQuery): Promise<TaskPage> {
    const limit = query.limit ?? 20;
    const rows = await this.db.getRepository(Task).find({
      where: {
        tenantId,
        ...(query.status ? { status: query.status } : {}),
        ...(query.kind ? { kind: query.kind } : {}),
        ...(query.created_after ? { createdAt: MoreThanOrEqual(new Date(query.created_after)) } : {}),
        ...(query.cursor ? { id: LessThan(query.cursor) } : {}),
      },
      // Ids are UUIDv7, ordered by creation time: newest first is id descending.
      order: { id: 'DESC' },
      take: limit + 1,
    });
    const data = rows.slice(0, limit);
    return { data, next_cursor: rows.length > limit ? data[data.length - 1].id : null };
  }

  async cancel(tenantId: string, id: string, kind?: TaskKind): Promise<Task> {
    const task = await this.get(tenantId, id, kind);
    const notCancellable = () =>
      new DomainException(
        ErrorCode.TaskNotCancellable,
        `Task ${id} is already ${task.status} and cannot be cancelled.`,
      );
    if (!isCancellable(task.status)) throw notCancellable();
    const label = task.kind === 'video' ? 'Video' : 'Image';
    const cancelled = await this.transitions.apply(id, 'cancelled', {
      error: `${label} generation was cancelled by user request`,
      errorCode: 'cancelled',
      message: 'Cancelled',
      completedAt: new Date(),
    });
    if (!cancelled) throw notCancellable();
    await this.engine.discard(id, task.attempt).catch(() => undefined);
    return cancelled;
  }

  async retry(tenantId: string, id: string, kind: TaskKind | undefined, dto: RetryTaskDto): Promise<Task> {
    const task = await this.get(tenantId, id, kind);
    const notRetryable = () =>
      new DomainException(
        ErrorCode.TaskNotRetryable,
        `Task ${id} is ${task.status}; only failed or timed-out tasks can be retried.`,
      );
    if (!isRetryable(task.status)) throw notRetryable();
    const now = new Date();
    const retried = await this.uow.run(async (em) => {
      if (dto.simulate !== undefined) await em.update(Task, { id }, { simulate: { ...dto.simulate } });
      return this.transitions.applyIn(
        em,
        id,
        'pending',
        {
          attempt: task.attempt + 1,
          progress: 0,
          message: 'Queued for retry',
          result: null,
          error: null,
          errorCode: null,
          startedAt: null,
          completedAt: null,
          deadlineAt: task.timeoutSeconds ? new Date(now.getTime() + task.timeoutSeconds * 1000) : null,
          leaseId: null,
          leaseExpiresAt: null,
          leaseCount: 0,
        },
        { attempt: task.attempt },
      );
    });
    if (!retried) throw notRetryable();
    this.transitions.committed(retried);
    await this.enqueue(retried);
    return retried;
  }

  private async enqueue(task: Task): Promise<void> {
    // Worker-routed tasks wait in the database (the tasks table is their queue); long-polling workers are woken.
    if (task.provider === 'workers') return this.bus.publishWork({ model: task.model, kind: task.kind });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ENQUEUE_WAIT_MS} ms`)), ENQUEUE_WAIT_MS);
    });
    try {
      await Promise.race([this.engine.enqueue(task.id, task.attempt), timeout]);
    } catch (err) {
      // The task is safe in the database; the sweeper enqueues it once Redis answers again.
      this.logger.warn(`task ${task.id} stored but not yet enqueued: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private checkWebhookFields(dto: CreateGenerationDto): void {
    const errors = webhookTargetErrors(dto.webhook_url, dto.webhook_headers, this.config.webhook.allowedCidrs, {
      url: 'webhook_url',
      headers: 'webhook_headers',
    });
    if (dto.webhook_metadata !== undefined && dto.webhook_metadata !== null) {
      if (Array.isArray(dto.webhook_metadata))
        errors.push({ field: 'webhook_metadata', message: 'must be a JSON object' });
      else if (Buffer.byteLength(JSON.stringify(dto.webhook_metadata)) > MAX_METADATA_BYTES) {
        errors.push({ field: 'webhook_metadata', message: `must serialize to at most ${MAX_METADATA_BYTES} bytes` });
      }
    }
    for (const [i, entry] of (dto.webhook_retry?.schedule ?? []).entries()) {
      if (parseDuration(entry) > MAX_RETRY_DELAY_MS)
        errors.push({ field: `webhook_retry.schedule.${i}`, message: 'must be at most 7 days' });
    }
    if (errors.length) throw validationFailed(errors);
  }
}
