import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';

/**
 * Runs a function in one database transaction.
 *
 * SQLite: one connection per process, so transactions from concurrent requests are queued here one after
 * another; and each starts with BEGIN IMMEDIATE, taking the write lock up front, because a deferred transaction
 * that tries to write after another process wrote fails with SQLITE_BUSY at once instead of waiting.
 */
@Injectable()
export class UnitOfWork {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly sqlite: boolean;

  constructor(private readonly dataSource: DataSource) {
    this.sqlite = dataSource.options.type === 'sqlite';
  }

  run<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    if (!this.sqlite) return this.dataSource.transaction(work);
    const next = this.tail.then(() => this.immediate(work));
    this.tail = next.catch(() => undefined);
    return next;
  }

  private async immediate<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.query('BEGIN IMMEDIATE');
      try {
        const result = await work(runner.manager);
        await runner.query('COMMIT');
        return result;
      } catch (err) {
        await runner.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } finally {
      await runner.release();
    }
  }
}
