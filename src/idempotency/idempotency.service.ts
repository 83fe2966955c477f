import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { DomainException, ErrorCode } from '../common/errors.js';
import type { Reply } from '../common/reply.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { IdempotencyKey } from './idempotency-key.entity.js';

export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${JSON.stringify(body ?? null)}`)
    .digest('hex');
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  const code = e.driverError?.code ?? e.code;
  return (
    code === '23505' || code === 'SQLITE_CONSTRAINT' || /UNIQUE constraint failed/i.test(String((err as Error).message))
  );
}

/**
 * Idempotency-Key (Stripe's rules): the first request with a key runs and its answer is kept 24 h per tenant;
 * a repeat with the same request gets that answer again; with a different request, 422; while the first
 * still runs, 409. A request that fails releases its key so it can be tried again.
 */
@Injectable()
export class IdempotencyService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
  ) {}

  async run(
    tenantId: string,
    key: string | undefined,
    fingerprint: string,
    work: () => Promise<Reply>,
  ): Promise<Reply> {
    if (key === undefined) return work();
    if (key.length < 1 || key.length > 255) {
      throw new DomainException(ErrorCode.ValidationFailed, 'Idempotency-Key must be 1–255 characters.', [
        { field: 'Idempotency-Key', message: 'must be 1–255 characters' },
      ]);
    }
    const now = new Date();
    const claimed = await this.claim(tenantId, key, fingerprint, now);
    if (claimed !== true) return claimed;
    let reply: Reply;
    try {
      reply = await work();
    } catch (err) {
      await this.uow.run((em) => em.delete(IdempotencyKey, { tenantId, key, state: 'running' }));
      throw err;
    }
    await this.uow.run((em) =>
      em.update(
        IdempotencyKey,
        { tenantId, key },
        {
          state: 'done',
          responseStatus: reply.status,
          responseBody: reply.body === undefined ? null : JSON.stringify(reply.body),
        },
      ),
    );
    return reply;
  }

  /** true when this request owns the key now; otherwise the stored reply to replay (or an error). */
  private async claim(tenantId: string, key: string, fingerprint: string, now: Date): Promise<true | Reply> {
    const row = {
      tenantId,
      key,
      fingerprint,
      state: 'running' as const,
      responseStatus: null,
      responseBody: null,
      createdAt: now,
      expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS),
    };
    for (let tries = 0; tries < 2; tries++) {
      try {
        await this.uow.run((em) => em.insert(IdempotencyKey, row));
        return true;
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
      }
      const existing = await this.db.getRepository(IdempotencyKey).findOneBy({ tenantId, key });
      if (!existing) continue;
      if (existing.expiresAt.getTime() <= now.getTime()) {
        await this.uow.run((em) =>
          em
            .createQueryBuilder()
            .delete()
            .from(IdempotencyKey)
            .where('tenant_id = :tenantId AND key = :key AND expires_at <= :now', { tenantId, key, now: now.getTime() })
            .execute(),
        );
        continue;
      }
      if (existing.fingerprint !== fingerprint) {
        throw new DomainException(
          ErrorCode.IdempotencyConflict,
          `Idempotency-Key "${key}" was already used with a different request.`,
        );
      }
      if (existing.state === 'running') {
        throw new DomainException(
          ErrorCode.IdempotencyInProgress,
          `A request with Idempotency-Key "${key}" is still being processed; retry shortly.`,
          undefined,
          { 'Retry-After': '1' },
        );
      }
      return {
        status: existing.responseStatus ?? 200,
        body: existing.responseBody === null ? undefined : JSON.parse(existing.responseBody),
        headers: { 'Idempotent-Replayed': 'true' },
      };
    }
    throw new DomainException(
      ErrorCode.IdempotencyInProgress,
      `Idempotency-Key "${key}" is contended; retry shortly.`,
      undefined,
      { 'Retry-After': '1' },
    );
  }
}
