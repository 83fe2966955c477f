import { BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Readable } from 'node:stream';
import { DataSource } from 'typeorm';
import type { WorkerPrincipal } from '../auth/worker-tokens.service.js';
import { DomainException, ErrorCode, FieldError } from '../common/errors.js';
import { MicroBatcher } from '../common/micro-batcher.js';
import { validationFailed } from '../common/validation.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { entityFromRow, Sql, together } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { EventBus } from '../events/event-bus.js';
import { ArtifactStore, ArtifactTooLarge } from '../generation/artifact-store.js';
import { Metrics } from '../observability/metrics.js';
import { Task, type TaskKind, type TaskResult } from '../tasks/task.entity.js';
import { CompleteDto, FailDto, HeartbeatDto, LeaseRequestDto } from './dto/worker-protocol.dto.js';
import { afterLostLease, jobView, leaseState, taskOfLease, wholePercent } from './lease-rules.js';
import { globMatches } from '../config/model-routes.js';
import { WorkQueue } from './work-queue.js';
import { WorkerRegistry } from './worker-registry.js';
import { mediaTypeOf } from '../common/media-types.js';

// An image answered inline (response_format b64_json) when a worker uploaded at most this much.
const MAX_INLINE_BYTES = 16 * 1_048_576;

const leaseNotFound = (leaseId: string) => new DomainException(ErrorCode.LeaseNotFound, `No lease with id ${leaseId}.`);
const leaseGone = (why: string) =>
  new DomainException(ErrorCode.LeaseExpired, `This lease is no longer held: ${why}. Stop working on the job.`);

export type Job = ReturnType<typeof jobView>;

interface Renewal {
  taskId: string;
  leaseId: string;
  expires: Date;
  now: Date;
}

/**
 * The worker protocol's rules: leasing (long poll), heartbeats, uploads, complete and fail. Every change of a
 * task goes through TaskTransitions guarded by the lease id (and, for a worker's own changes, by the lease being
 * unexpired), so of two workers holding old and new leases of one task only the live one can change it.
 */
@Injectable()
export class WorkerLeasesService implements BeforeApplicationShutdown {
  private readonly waits = new Set<() => void>();
  private closing = false;
  // Many workers heartbeat and complete at once: the reads of their tasks, and the plain lease renewals, that
  // arrive within one round share one query and one transaction (each renewal still guarded by its lease id).
  private readonly reads = new MicroBatcher(async (ids: string[]) => {
    const unique = [...new Set(ids)];
    const rows = await this.db.query<Array<Record<string, unknown>>>(
      `SELECT * FROM tasks WHERE id IN (${this.sql.params(unique.length)})`,
      unique,
    );
    const found = new Map(rows.map((row) => [row.id as string, entityFromRow(this.db.manager, Task, row)]));
    return ids.map((id) => found.get(id) ?? null);
  }, 128);
  private readonly renewals = new MicroBatcher(
    (batch: Renewal[]) =>
      this.uow.run((em) =>
        together(
          em,
          batch.map(
            ({ taskId, leaseId, expires, now }) =>
              async () =>
                (
                  await this.sql.updateReturning(
                    em,
                    `UPDATE tasks SET lease_expires_at = ${this.sql.params(1)} WHERE id = ${this.sql.params(1, 2)} ` +
                      `AND lease_id = ${this.sql.params(1, 3)} AND status = 'processing' ` +
                      `AND lease_expires_at > ${this.sql.params(1, 4)} RETURNING id`,
                    [expires.getTime(), taskId, leaseId, now.getTime()],
                  )
                ).length > 0,
          ),
        ),
      ),
    128,
  );
  private readonly sql: Sql;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly queue: WorkQueue,
    private readonly registry: WorkerRegistry,
    private readonly artifacts: ArtifactStore,
    private readonly bus: EventBus,
    private readonly metrics: Metrics,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {
    this.sql = new Sql(db);
  }

  /**
   * Leases jobs; with none ready, waits up to wait_seconds for a "work available" signal (Redis pub/sub) whose
   * model and kind this worker serves, then looks again. The database is read on each signal, never on a timer.
   * `gone` is aborted when the worker hung up: a job leased then would sit unworked until its lease expired.
   */
  async lease(worker: WorkerPrincipal, dto: LeaseRequestDto, gone: AbortSignal): Promise<Job[]> {
    // Shutting down: answered at once and without the database, which closes right after the HTTP server.
    if (this.closing) return [];
    const kinds: TaskKind[] = dto.kinds ?? ['video', 'image'];
    const max = dto.max_jobs ?? 1;
    await this.registry.seen(dto.worker_id, worker, dto.models, kinds);
    const claim = async () =>
      gone.aborted
        ? []
        : (await this.queue.claim(dto.worker_id, worker.tokenId, dto.models, kinds, max, gone)).map((t) => this.job(t));
    const waitMs = (dto.wait_seconds ?? 0) * 1000;
    if (waitMs <= 0) return claim();

    const deadline = Date.now() + waitMs;
    let signalled: boolean;
    let wake = () => undefined as void;
    const sub = this.bus.subscribeWork((work) => {
      if (!kinds.includes(work.kind as TaskKind) || !dto.models.some((m) => globMatches(m, work.model))) return;
      signalled = true;
      wake();
    });
    const pause = (ms: number, until?: Promise<void>) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          gone.removeEventListener('abort', done);
          this.waits.delete(done);
          wake = () => undefined;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, ms));
        gone.addEventListener('abort', done);
        this.waits.add(done);
        if (until) void until.then(done);
        else wake = done;
      });
    try {
      // Subscribed before the first look, so a task created between the look and the wait still wakes us.
      await pause(deadline - Date.now(), sub.ready);
      for (;;) {
        if (this.closing || gone.aborted) return [];
        signalled = false;
        const jobs = await claim();
        if (jobs.length || gone.aborted || this.closing || Date.now() >= deadline) return jobs;
        if (!signalled) await pause(deadline - Date.now());
      }
    } finally {
      sub.stop();
    }
  }

  /** Renews a lease and records progress; tells the worker to stop when the task was cancelled or timed out. */
  async heartbeat(
    leaseId: string,
    worker: WorkerPrincipal,
    dto: HeartbeatDto,
  ): Promise<{ lease_expires_at: string; cancel: false } | { cancel: true; reason: string }> {
    let task = await this.taskOf(leaseId);
    const now = new Date();
    const state = leaseState(task, leaseId, worker.tokenId, now.getTime());
    if (state.kind === 'cancel') return this.cancelled(task, leaseId, state.reason);
    if (state.kind === 'gone') throw leaseGone(state.why);
    void this.registry.touch(task.leaseWorkerId);
    const expires = new Date(now.getTime() + Math.round(this.config.workers.leaseSeconds * 1000));
    const guard = { from: ['processing' as const], attempt: task.attempt, lease: { id: leaseId, liveAt: now } };
    // Progress never goes back for the client: a worker resuming a lost lease from scratch reports lower numbers.
    const progress = dto.progress === undefined ? task.progress : Math.max(task.progress, wholePercent(dto.progress));
    const message = dto.message ?? task.message;
    let renewed: boolean;
    if (progress !== task.progress || message !== task.message) {
      // A change worth telling: an event (SSE, webhooks, supersede rules) exactly as the simulator's progress.
      renewed =
        (await this.queue.change({
          taskId: task.id,
          tenantId: task.tenantId,
          to: 'processing',
          patch: { progress, message, leaseExpiresAt: expires },
          guard,
        })) !== null;
    } else {
      renewed = await this.renewals.submit({ taskId: task.id, leaseId, expires, now });
    }
    if (renewed) return { lease_expires_at: expires.toISOString(), cancel: false };
    // Lost a race (cancel, timeout, expiry) between the read and the update: answer from what happened.
    task = await this.taskOf(leaseId);
    const after = leaseState(task, leaseId, worker.tokenId, Date.now());
    if (after.kind === 'cancel') return this.cancelled(task, leaseId, after.reason);
    throw leaseGone(after.kind === 'gone' ? after.why : 'the lease changed meanwhile');
  }

  /** Streams an upload into the artifact store under the task's current attempt. */
  async upload(
    leaseId: string,
    worker: WorkerPrincipal,
    name: string,
    body: Readable,
    mimeType: string,
    declaredBytes: number | undefined,
  ) {
    const task = await this.liveTask(leaseId, worker);
    const max = this.config.artifactMaxBytes;
    if (declaredBytes !== undefined && declaredBytes > max) throw tooLarge(max);
    try {
      const stored = await this.artifacts.saveUpload(task.id, task.attempt, name, body, mimeType, max);
      return { name, url: this.artifacts.urlOf(stored.name), size_bytes: stored.sizeBytes, mime_type: stored.mimeType };
    } catch (err) {
      if (err instanceof ArtifactTooLarge) throw tooLarge(max);
      throw err;
    }
  }

  async complete(
    leaseId: string,
    worker: WorkerPrincipal,
    dto: CompleteDto,
  ): Promise<{ task_id: string; status: 'completed' }> {
    const task = await this.liveTask(leaseId, worker);
    const data = await this.resultData(task, dto);
    const now = new Date();
    const done = await this.queue.change({
      taskId: task.id,
      tenantId: task.tenantId,
      to: 'completed',
      patch: {
        progress: 100,
        message: task.kind === 'video' ? 'Video generation complete' : 'Image generation complete',
        completedAt: now,
        result: {
          created: Math.floor(now.getTime() / 1000),
          data,
          model: task.model,
          usage: { generation_ms: now.getTime() - (task.startedAt?.getTime() ?? now.getTime()) },
        },
        leaseId: null,
        leaseExpiresAt: null,
      },
      guard: { from: ['processing'], attempt: task.attempt, lease: { id: leaseId, liveAt: now } },
    });
    if (!done) throw await this.whyNot(leaseId, worker);
    this.metrics.workerLeases.inc({ outcome: 'completed' });
    return { task_id: task.id, status: 'completed' };
  }

  /**
   * A worker's failure: final unless `retryable`; a retryable one puts the task back in the queue, and counts as
   * one of its WORKER_MAX_LEASES leases (the last one fails the task with the worker's error).
   */
  async fail(
    leaseId: string,
    worker: WorkerPrincipal,
    dto: FailDto,
  ): Promise<{ task_id: string; status: string; requeued: boolean }> {
    const task = await this.liveTask(leaseId, worker);
    const now = new Date();
    const guard = { from: ['processing' as const], attempt: task.attempt, lease: { id: leaseId, liveAt: now } };
    const requeue =
      dto.retryable === true && afterLostLease(task.leaseCount, this.config.workers.maxLeases) === 'requeue';
    const changed = await this.queue.change({
      taskId: task.id,
      tenantId: task.tenantId,
      guard,
      ...(requeue
        ? {
            to: 'processing',
            patch: {
              message: `Queued again after a worker failure: ${dto.error}`.slice(0, 1_000),
              leaseId: null,
              leaseExpiresAt: null,
            },
          }
        : {
            to: 'failed',
            patch: {
              error: dto.error,
              errorCode: dto.code ?? 'generation_failed',
              message: 'Generation failed',
              completedAt: now,
              leaseId: null,
              leaseExpiresAt: null,
            },
          }),
    });
    if (!changed) throw await this.whyNot(leaseId, worker);
    this.metrics.workerLeases.inc({ outcome: requeue ? 'requeued' : 'failed' });
    if (requeue) this.queue.announce(changed);
    return { task_id: task.id, status: changed.status, requeued: requeue };
  }

  /** Ends every long poll at once on shutdown (each answers `{jobs: []}`), so the server can close. */
  beforeApplicationShutdown(): void {
    this.closing = true;
    for (const done of [...this.waits]) done();
  }

  private job(task: Task): Job {
    return jobView(task, this.config.workers.leaseSeconds, task.progress);
  }

  private async taskOf(leaseId: string): Promise<Task> {
    const taskId = taskOfLease(leaseId);
    const task = taskId ? await this.reads.submit(taskId) : null;
    if (!task) throw leaseNotFound(leaseId);
    return task;
  }

  /** The task of a lease that is live now; else 404 (no such lease) or 410 (ended, expired, replaced, task over). */
  private async liveTask(leaseId: string, worker: WorkerPrincipal): Promise<Task> {
    const task = await this.taskOf(leaseId);
    const state = leaseState(task, leaseId, worker.tokenId, Date.now());
    if (state.kind === 'gone') throw leaseGone(state.why);
    if (state.kind === 'cancel') throw leaseGone(`the task is ${task.status}`);
    return task;
  }

  private async whyNot(leaseId: string, worker: WorkerPrincipal): Promise<DomainException> {
    const task = await this.taskOf(leaseId);
    const state = leaseState(task, leaseId, worker.tokenId, Date.now());
    return leaseGone(
      state.kind === 'gone'
        ? state.why
        : state.kind === 'cancel'
          ? `the task is ${task.status}`
          : 'the lease changed meanwhile',
    );
  }

  /** The worker learns of the cancel (or timeout) now; its lease ends with this answer. */
  private async cancelled(task: Task, leaseId: string, reason: string): Promise<{ cancel: true; reason: string }> {
    const ended = await this.uow.run(
      async (em) =>
        (
          await this.sql.updateReturning(
            em,
            `UPDATE tasks SET lease_id = NULL, lease_expires_at = NULL WHERE id = ${this.sql.params(1)} ` +
              `AND lease_id = ${this.sql.params(1, 2)} RETURNING id`,
            [task.id, leaseId],
          )
        ).length > 0,
    );
    if (!ended) throw leaseGone('the lease ended');
    this.metrics.workerLeases.inc({ outcome: 'cancelled' });
    return { cancel: true, reason };
  }

  /** The task's result.data from the worker's outputs: uploaded artifacts (served by Herald) or URLs of its own. */
  private async resultData(task: Task, dto: CompleteDto): Promise<TaskResult['data']> {
    const errors: FieldError[] = [];
    const data: TaskResult['data'] = [];
    const inline = task.options.response_format === 'b64_json' && task.kind === 'image';
    for (const [i, out] of dto.outputs.entries()) {
      if ((out.artifact === undefined) === (out.url === undefined)) {
        errors.push({ field: `outputs.${i}`, message: 'must have exactly one of artifact or url' });
        continue;
      }
      const upload =
        out.artifact !== undefined
          ? await this.artifacts.uploadOf(ArtifactStore.uploadName(task.id, task.attempt, out.artifact))
          : undefined;
      if (out.artifact !== undefined && !upload) {
        errors.push({
          field: `outputs.${i}.artifact`,
          message: `no artifact named "${out.artifact}" was uploaded for this task's attempt`,
        });
        continue;
      }
      const given = out.metadata ?? {};
      // A URL of the worker's own without a type is typed by its extension, as a browser or CDN would.
      const mimeType =
        out.mime_type ?? upload?.mimeType ?? (out.url && mediaTypeOf(out.url)) ?? 'application/octet-stream';
      const metadata = {
        ...(task.options.duration !== undefined ? { duration: task.options.duration } : {}),
        ...(task.options.fps !== undefined ? { fps: task.options.fps } : {}),
        resolution: task.options.size ?? null,
        seed: task.options.seed ?? null,
        ...given,
        file_size_bytes: upload?.sizeBytes ?? (given.file_size_bytes as number | undefined) ?? null,
        mime_type: mimeType,
      } as unknown as TaskResult['data'][number]['metadata'];
      const revised = dto.revised_prompt ? { revised_prompt: dto.revised_prompt } : {};
      if (upload && inline && mimeType.startsWith('image/') && upload.sizeBytes <= MAX_INLINE_BYTES) {
        const file = await this.artifacts.read(upload.name);
        if (file) {
          data.push({ b64_json: file.bytes.toString('base64'), ...revised, metadata });
          continue;
        }
      }
      data.push({ url: upload ? this.artifacts.urlOf(upload.name) : out.url!, ...revised, metadata });
    }
    if (errors.length) throw validationFailed(errors);
    return data;
  }
}

const tooLarge = (max: number) =>
  new DomainException(
    ErrorCode.PayloadTooLarge,
    `The artifact is larger than ARTIFACT_MAX_BYTES (${max} bytes).`,
    undefined,
    { Connection: 'close' },
  );
