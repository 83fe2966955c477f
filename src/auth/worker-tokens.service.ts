import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, IsNull } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { UnitOfWork } from '../database/unit-of-work.js';
import { generateWorkerToken, hashApiKey, keyPrefix } from './keys.js';
import { WorkerToken } from './worker-token.entity.js';

export interface WorkerPrincipal {
  tokenId: string;
  label: string | null;
}

// As for API keys: revocation reaches every process within this long, and a request costs no DB read.
const AUTH_CACHE_MS = 5_000;

/** Worker credentials: global, valid only on /v1/worker/*, stored hashed, revocable. */
@Injectable()
export class WorkerTokensService {
  private readonly logger = new Logger('WorkerTokens');
  private readonly cache = new Map<string, { principal: WorkerPrincipal | null; until: number }>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
  ) {}

  async authenticate(token: string | undefined): Promise<WorkerPrincipal | null> {
    if (!token || token.length > 512) return null;
    const hash = hashApiKey(token);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.until > now) return hit.principal;
    const row = await this.db.getRepository(WorkerToken).findOneBy({ tokenHash: hash, revokedAt: IsNull() });
    const principal = row ? { tokenId: row.id, label: row.label } : null;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { principal, until: now + AUTH_CACHE_MS });
    return principal;
  }

  async create(label?: string, presetToken?: string): Promise<{ id: string; token: string }> {
    const token = presetToken ?? generateWorkerToken();
    const row: WorkerToken = {
      id: uuidv7(),
      label: label ?? null,
      prefix: keyPrefix(token),
      tokenHash: hashApiKey(token),
      createdAt: new Date(),
      revokedAt: null,
    };
    await this.uow.run((em) => em.insert(WorkerToken, row));
    return { id: row.id, token };
  }

  list(): Promise<WorkerToken[]> {
    return this.db.getRepository(WorkerToken).find({ order: { createdAt: 'ASC' } });
  }

  async revoke(id: string): Promise<boolean> {
    return this.uow.run(
      async (em) =>
        ((await em.update(WorkerToken, { id, revokedAt: IsNull() }, { revokedAt: new Date() })).affected ?? 0) > 0,
    );
  }

  /** BOOTSTRAP_WORKER_TOKEN becomes a worker token at start when there is none yet (containers, tests). */
  async bootstrap(presetToken: string | undefined): Promise<void> {
    if (!presetToken || (await this.db.getRepository(WorkerToken).count()) > 0) return;
    try {
      await this.create('bootstrap', presetToken);
    } catch (err) {
      // Another process bootstrapped at the same moment; its token stands.
      this.logger.warn(`bootstrap worker token not created: ${(err as Error).message}`);
    }
  }
}
