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
      await this.exec('BEGIN IMMEDIATE');
      try {
        const result = await work(runner.manager);
        await this.exec('COMMIT');
        return result;
      } catch (err) {
        await this.exec('ROLLBACK').catch(() => undefined);
        throw err;
      }
    } finally {
      await runner.release();
    }
  }

  /**
   * A statement without parameters or rows through sqlite3's `exec`: one trip to the driver's thread, where a
   * query (prepare, then run) takes two, each a turn of a busy event loop, and every transaction has two of these.
   */
  private exec(statement: string): Promise<void> {
    const db = (this.dataSource.driver as unknown as { databaseConnection: SqliteConnection }).databaseConnection;
    return new Promise((resolve, reject) => db.exec(statement, (err) => (err ? reject(err) : resolve())));
  }
}

interface SqliteConnection {
  exec(sql: string, callback: (err: Error | null) => void): void;
}
