import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager, type EntityTarget, type ObjectLiteral } from 'typeorm';
import { PriorityMutex } from '../common/priority-mutex.js';
import { inlineParams, insertStatement, Sql, type Statement } from './sql.js';

// The writes each transaction sends with its COMMIT (writeAtCommit), by the transaction's manager.
const atCommit = new WeakMap<EntityManager, string[]>();

/**
 * Sends a write whose answer the transaction does not need, and that nothing later in it reads, with the COMMIT,
 * in the same trip: on SQLite through the driver's `exec`, on PostgreSQL as one simple query of several statements.
 * Neither takes parameters there, so the values are written into the text as literals (inlineParams). Runs it at
 * once outside a UnitOfWork transaction, or with a value that has no literal. A write that fails there fails the
 * COMMIT, and the transaction is rolled back as for any failure in it.
 */
export async function writeAtCommit(em: EntityManager, text: string, params: readonly unknown[]): Promise<void> {
  const queue = atCommit.get(em);
  const inlined = queue && inlineParams(text, params, { postgres: new Sql(em.connection).postgres });
  if (inlined === undefined) await em.query(text, [...params]);
  else queue!.push(inlined);
}

/** insertMany's rows written with the COMMIT (writeAtCommit). */
export async function insertAtCommit<T extends ObjectLiteral>(
  em: EntityManager,
  target: EntityTarget<T>,
  entities: readonly T[],
): Promise<void> {
  const statement = insertStatement(em, target, entities);
  if (statement) await writeAtCommit(em, statement.text, statement.params);
}

/** Sends the writes held for the COMMIT now: before a statement that reads what they change. */
export async function flushAtCommit(em: EntityManager): Promise<void> {
  const queue = atCommit.get(em);
  if (!queue?.length) return;
  const statements = queue.splice(0).join(';\n');
  if (new Sql(em.connection).postgres) await em.query(statements);
  else await execOn(em.connection, statements);
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
  // Guests that came while the connection was busy and that no transaction took: a transaction of their own.
  private readonly oneAtATime = new PriorityMutex(() => {
    if (this.guests.length) this.runGuests();
  });
  private readonly sqlite: boolean;
  // Transactions begun for the next work in a row, and whether one is open now, waiting for it.
  private handedOn = 0;
  private begun = false;
  // Writes that need no answer (commitWrites), waiting for the next COMMIT.
  private guests: Guest[] = [];

  constructor(private readonly dataSource: DataSource) {
    this.sqlite = dataSource.options.type === 'sqlite';
  }

  run<T>(work: (em: EntityManager) => Promise<T>, { urgent = false } = {}): Promise<T> {
    if (!this.sqlite) return this.pooled(work);
    return this.oneAtATime.run(() => this.immediate(work), urgent);
  }

  /**
   * PostgreSQL: a transaction on a connection of the pool. Its COMMIT and the writes held for it (writeAtCommit) go
   * in one simple query, one trip. (The runner is released after, so TypeORM's own flag of an open transaction, which
   * that COMMIT does not clear, is never read again.)
   */
  private async pooled<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    const last: string[] = [];
    atCommit.set(runner.manager, last);
    try {
      await runner.startTransaction();
      let result: T;
      try {
        result = await work(runner.manager);
        await runner.query([...last.splice(0), 'COMMIT'].join(';\n'));
      } catch (err) {
        await runner.rollbackTransaction().catch(() => undefined);
        throw err;
      }
      return result;
    } finally {
      atCommit.delete(runner.manager);
      await runner.release();
    }
  }

  /**
   * Writes that need no answer and that nothing reads before they commit (a delivery ledger round of successes).
   * SQLite: they go with the COMMIT of the transaction running now, or of the next one, rather than taking a turn of
   * the connection (which every other transaction would wait for), and resolve once committed. Should that COMMIT
   * fail, they run again in a transaction of their own, so that another's failure is never theirs. PostgreSQL: one
   * simple query, which the server runs as a transaction of its own. With a value that has no literal, a
   * transaction of their own.
   */
  commitWrites(statements: readonly Statement[]): Promise<void> {
    const inlined = statements.map((s) => inlineParams(s.text, s.params, { postgres: !this.sqlite }));
    if (inlined.some((s) => s === undefined)) {
      return this.run(
        async (em) => {
          for (const s of statements) await em.query(s.text, s.params);
        },
        { urgent: true },
      );
    }
    // PostgreSQL runs one simple query of several statements as one transaction of its own: one trip, not five.
    if (!this.sqlite) return this.dataSource.query(inlined.join(';\n')).then(() => undefined);
    return new Promise((resolve, reject) => {
      this.guests.push({ statements: inlined as string[], resolve, reject });
      if (!this.oneAtATime.busy) this.runGuests();
    });
  }

  /** A transaction of guests' writes alone (commitWrites): those waiting, or the given ones. */
  private runGuests(guests: 'waiting' | Guest[] = 'waiting'): void {
    // Their own promises carry the outcome.
    void this.oneAtATime.run(() => this.immediate(NO_WORK, { guests, alone: true }), true).catch(() => 0);
  }

  /**
   * `guests`: whose writes this COMMIT takes (those waiting then, or only the given ones). `alone`: the guests'
   * writes are all there is, so BEGIN, they and COMMIT go in one trip (and begin nothing after, so that a busy BEGIN
   * in that trip can only be its own).
   */
  private async immediate<T>(
    work: (em: EntityManager) => Promise<T>,
    { guests = 'waiting', alone = false }: { guests?: 'waiting' | Guest[]; alone?: boolean } = {},
  ): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    const last: string[] = [];
    atCommit.set(runner.manager, last);
    try {
      const begin = this.begun ? [] : ['BEGIN IMMEDIATE'];
      if (alone && !this.begun && guests === 'waiting' && this.guests.length === 0) return await work(runner.manager);
      if (!alone && !this.begun) await execOn(this.dataSource, 'BEGIN IMMEDIATE');
      this.begun = false;
      let result: T;
      try {
        result = await work(runner.manager);
      } catch (err) {
        await execOn(this.dataSource, 'ROLLBACK').catch(() => undefined);
        throw err;
      }
      const taken = guests === 'waiting' ? this.guests.splice(0) : guests;
      // Bounded, so that another process sharing the file gets the write lock between two runs of this one's.
      const handOn = !alone && this.oneAtATime.waiting && this.handedOn < MAX_HANDED_ON;
      // sqlite3_exec stops at the first statement that fails, so a failed write never reaches the COMMIT, and a
      // failed COMMIT never begins the next transaction. The guests go behind a savepoint: should one of their writes
      // fail, this transaction commits without them (commitWithoutGuests).
      const guestWrites = taken.flatMap((g) => g.statements);
      const tail = [
        ...(alone ? begin : []),
        ...last,
        ...(guestWrites.length && !alone ? ['SAVEPOINT guests', ...guestWrites, 'RELEASE guests'] : guestWrites),
        'COMMIT',
        ...(handOn ? ['BEGIN IMMEDIATE'] : []),
      ];
      try {
        await execOn(this.dataSource, tail.join(';\n'));
      } catch (err) {
        this.handedOn = 0;
        if (!(handOn && committedBeforeFailing(err))) return await this.commitWithoutGuests(err, taken, alone, result);
      }
      for (const g of taken) g.resolve();
      this.handedOn = handOn ? this.handedOn + 1 : 0;
      this.begun = handOn;
      return result;
    } finally {
      atCommit.delete(runner.manager);
      await runner.release();
    }
  }

  /**
   * After a COMMIT's trip failed: the savepoint still there means a guest's write failed, and the transaction commits
   * without the guests; else it was its own failure, and it rolls back. Either way each guest tries again alone.
   */
  private async commitWithoutGuests<T>(err: unknown, guests: Guest[], alone: boolean, result: T): Promise<T> {
    const guestFailed =
      guests.length > 0 &&
      !alone &&
      (await execOn(this.dataSource, 'ROLLBACK TO guests').then(
        () => true,
        () => false,
      ));
    if (alone && guests.length === 1) guests[0].reject(err);
    else for (const g of guests) this.runGuests([g]);
    if (guestFailed) {
      try {
        await execOn(this.dataSource, 'RELEASE guests;\nCOMMIT');
        return result;
      } catch (commitErr) {
        err = commitErr;
      }
    }
    await execOn(this.dataSource, 'ROLLBACK').catch(() => undefined);
    throw err;
  }
}

const NO_WORK = () => Promise.resolve(undefined);

interface Guest {
  statements: string[];
  resolve: () => void;
  reject: (err: unknown) => void;
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
