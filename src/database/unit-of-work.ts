import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { PriorityMutex } from '../common/priority-mutex.js';
import { inlineParams } from './sql.js';

// The writes each SQLite transaction sends with its COMMIT (writeAtCommit), by the transaction's manager.
const atCommit = new WeakMap<EntityManager, string[]>();

/**
 * Sends a write whose answer the transaction does not need, and that nothing later in it reads, with the COMMIT:
 * on SQLite in the same trip to the driver's thread (exec takes no parameters, so the values are written into the
 * text as literals). Runs it at once where it cannot go so: on PostgreSQL, outside a UnitOfWork transaction, or
 * with a value that is not a plain number, text or null. A write that fails there fails the COMMIT, and the
 * transaction is rolled back as for any failure in it.
 */
export async function writeAtCommit(em: EntityManager, text: string, params: readonly unknown[]): Promise<void> {
  const queue = atCommit.get(em);
  const inlined = queue && inlineParams(text, params);
  if (inlined === undefined) await em.query(text, [...params]);
  else queue!.push(inlined);
}

/** Sends the writes held for the COMMIT now: before a statement that reads what they change. */
export async function flushAtCommit(em: EntityManager): Promise<void> {
  const queue = atCommit.get(em);
  if (!queue?.length) return;
  const statements = queue.splice(0).join(';\n');
  await execOn(em.connection, statements);
}

/**
 * Statements without parameters or rows through sqlite3's `exec`: one trip to the driver's thread, where a
 * query (prepare, then run) takes two, each a turn of a busy event loop, and every transaction has two of these.
 */
function execOn(dataSource: DataSource, statements: string): Promise<void> {
  const db = (dataSource.driver as unknown as { databaseConnection: SqliteConnection }).databaseConnection;
  return new Promise((resolve, reject) => db.exec(statements, (err) => (err ? reject(err) : resolve())));
}

/**
 * Runs a function in one database transaction.
 *
 * SQLite: one connection per process, so transactions from concurrent requests are queued here one after
 * another; and each starts with BEGIN IMMEDIATE, taking the write lock up front, because a deferred transaction
 * that tries to write after another process wrote fails with SQLITE_BUSY at once instead of waiting. `urgent`
 * work (the delivery ledger: a webhook waits on it) goes ahead of other transactions waiting their turn.
 * When a transaction commits while another waits, the COMMIT's trip begins the next one (handedOn): under load
 * that is nearly every transaction, and each saves a trip through the event loop (docs/BENCHMARKS.md, finding 40).
 */
@Injectable()
export class UnitOfWork {
  private readonly oneAtATime = new PriorityMutex();
  private readonly sqlite: boolean;
  // Transactions begun for the next work in a row, and whether one is open now, waiting for it.
  private handedOn = 0;
  private begun = false;

  constructor(private readonly dataSource: DataSource) {
    this.sqlite = dataSource.options.type === 'sqlite';
  }

  run<T>(work: (em: EntityManager) => Promise<T>, { urgent = false } = {}): Promise<T> {
    if (!this.sqlite) return this.dataSource.transaction(work);
    return this.oneAtATime.run(() => this.immediate(work), urgent);
  }

  private async immediate<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    const last: string[] = [];
    atCommit.set(runner.manager, last);
    try {
      if (!this.begun) await execOn(this.dataSource, 'BEGIN IMMEDIATE');
      this.begun = false;
      let result: T;
      try {
        result = await work(runner.manager);
      } catch (err) {
        await execOn(this.dataSource, 'ROLLBACK').catch(() => undefined);
        throw err;
      }
      // Bounded, so that another process sharing the file gets the write lock between two runs of this one's.
      const handOn = this.oneAtATime.waiting && this.handedOn < MAX_HANDED_ON;
      // sqlite3_exec stops at the first statement that fails, so a failed write never reaches the COMMIT, and a
      // failed COMMIT never begins the next transaction.
      const tail = [...last, 'COMMIT', ...(handOn ? ['BEGIN IMMEDIATE'] : [])];
      try {
        await execOn(this.dataSource, tail.join(';\n'));
      } catch (err) {
        await execOn(this.dataSource, 'ROLLBACK').catch(() => undefined);
        this.handedOn = 0;
        if (!(handOn && committedBeforeFailing(err))) throw err;
        return result;
      }
      this.handedOn = handOn ? this.handedOn + 1 : 0;
      this.begun = handOn;
      return result;
    } finally {
      atCommit.delete(runner.manager);
      await runner.release();
    }
  }
}

/** How many transactions in a row one COMMIT may begin for the next (UnitOfWork). */
export const MAX_HANDED_ON = 32;

/**
 * Whether `COMMIT; BEGIN IMMEDIATE` that failed did commit: only BEGIN fails with SQLITE_BUSY there (another
 * process kept the write lock past the busy timeout), since a COMMIT in WAL mode with the write lock held cannot be
 * busy. Every other failure (a deferred constraint, a full disk, a write held for the COMMIT) stops before BEGIN
 * runs and leaves nothing committed.
 */
export function committedBeforeFailing(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'SQLITE_BUSY';
}

interface SqliteConnection {
  exec(sql: string, callback: (err: Error | null) => void): void;
}
