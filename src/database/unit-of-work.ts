import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { PriorityMutex } from '../common/priority-mutex.js';

/**
 * Runs a function in one database transaction.
 *
 * SQLite: one connection per process, so transactions from concurrent requests are queued here one after
 * another; and each starts with BEGIN IMMEDIATE, taking the write lock up front, because a deferred transaction
 * that tries to write after another process wrote fails with SQLITE_BUSY at once instead of waiting. `urgent`
 * work (the delivery ledger: a webhook waits on it) goes ahead of other transactions waiting their turn.
 */
@Injectable()
export class UnitOfWork {
  private readonly oneAtATime = new PriorityMutex();
  private readonly sqlite: boolean;

  constructor(private readonly dataSource: DataSource) {
    this.sqlite = dataSource.options.type === 'sqlite';
  }

  run<T>(work: (em: EntityManager) => Promise<T>, { urgent = false } = {}): Promise<T> {
    if (!this.sqlite) return this.dataSource.transaction(work);
    return this.oneAtATime.run(() => this.immediate(work), urgent);
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
