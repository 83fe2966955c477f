import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, MoreThanOrEqual } from 'typeorm';
import type { WorkerPrincipal } from '../auth/worker-tokens.service.js';
import { Sql } from '../database/sql.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { Metrics } from '../observability/metrics.js';
import { Worker } from './worker.entity.js';

/** A worker counts as online (metrics, discovery, dashboard) when seen within this long. */
export const ONLINE_MS = 60_000;
// One write per worker per this long and process at most: a busy worker polls and heartbeats many times a second.
const SEEN_WRITE_MS = 5_000;

export interface WorkerView {
  id: string;
  label: string | null;
  models: string[];
  kinds: string[];
  leases_held: number;
  first_seen_at: string;
  last_seen_at: string;
  online: boolean;
}

/** Which workers exist, what they serve and when they were last seen: for operators and model discovery. */
@Injectable()
export class WorkerRegistry implements OnModuleInit {
  private readonly logger = new Logger('Workers');
  private readonly written = new Map<string, { at: number; key: string }>();
  private readonly sql: Sql;

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly metrics: Metrics,
  ) {
    this.sql = new Sql(db);
  }

  onModuleInit(): void {
    this.metrics.gauge('herald_workers_online', `Workers seen in the last ${ONLINE_MS / 1000} s`, [], async (g) => {
      g.set(
        await this.db.getRepository(Worker).countBy({ lastSeenAt: MoreThanOrEqual(new Date(Date.now() - ONLINE_MS)) }),
      );
    });
  }

  /** Records a lease request. Never fails the request: the registry is for display. */
  async seen(
    workerId: string,
    token: WorkerPrincipal,
    models: readonly string[],
    kinds: readonly string[],
  ): Promise<void> {
    const now = Date.now();
    const key = JSON.stringify([token.tokenId, models, kinds]);
    const last = this.written.get(workerId);
    if (last && last.key === key && now - last.at < SEEN_WRITE_MS) return;
    this.written.set(workerId, { at: now, key });
    if (this.written.size > 10_000) this.written.clear();
    const p = (n: number) => this.sql.params(n);
    try {
      await this.uow.run((em) =>
        em.query(
          `INSERT INTO workers (id, token_id, label, models, kinds, first_seen_at, last_seen_at) VALUES (${p(7)}) ` +
            `ON CONFLICT (id) DO UPDATE SET token_id = excluded.token_id, label = excluded.label, models = excluded.models, kinds = excluded.kinds, last_seen_at = excluded.last_seen_at`,
          [workerId, token.tokenId, token.label, JSON.stringify(models), JSON.stringify(kinds), now, now],
        ),
      );
    } catch (err) {
      this.logger.warn(`worker ${workerId} not recorded: ${(err as Error).message}`);
    }
  }

  /** A heartbeat keeps a busy worker (one not asking for leases) listed as online. */
  async touch(workerId: string | null): Promise<void> {
    if (!workerId) return;
    const now = Date.now();
    const last = this.written.get(workerId);
    if (last && now - last.at < SEEN_WRITE_MS) return;
    this.written.set(workerId, { at: now, key: last?.key ?? '' });
    await this.uow
      .run((em) => em.update(Worker, { id: workerId }, { lastSeenAt: new Date(now) }))
      .catch(() => undefined);
  }

  /** Every known worker, most recently seen first, with the leases it holds now. */
  async list(): Promise<WorkerView[]> {
    const now = Date.now();
    const workers = await this.db.getRepository(Worker).find({ order: { lastSeenAt: 'DESC' }, take: 1_000 });
    const held = new Map<string, number>();
    const rows = await this.db.query<Array<{ worker: string; n: number | string }>>(
      `SELECT lease_worker_id AS worker, COUNT(*) AS n FROM tasks WHERE lease_id IS NOT NULL AND status = 'processing' AND lease_expires_at > ${this.sql.params(1)} GROUP BY lease_worker_id`,
      [now],
    );
    for (const r of rows) held.set(r.worker, Number(r.n));
    return workers.map((w) => ({
      id: w.id,
      label: w.label,
      models: w.models,
      kinds: w.kinds,
      leases_held: held.get(w.id) ?? 0,
      first_seen_at: w.firstSeenAt.toISOString(),
      last_seen_at: w.lastSeenAt.toISOString(),
      online: now - w.lastSeenAt.getTime() < ONLINE_MS,
    }));
  }

  /** Workers seen within ONLINE_MS, for discovery. */
  online(): Promise<Worker[]> {
    return this.db
      .getRepository(Worker)
      .find({ where: { lastSeenAt: MoreThanOrEqual(new Date(Date.now() - ONLINE_MS)) } });
  }
}
