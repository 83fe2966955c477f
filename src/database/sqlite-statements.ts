import type sqlite3 from 'sqlite3';

type Callback = (this: sqlite3.Statement, err: Error | null, rows?: unknown[]) => void;
type Sqlite3Module = typeof sqlite3;

/**
 * What one connection keeps prepared, the least recently used finalized first past either bound: statements, and
 * their texts' total length. A prepared statement's memory grows with its text, and the multi-row statements'
 * texts run to kilobytes (unbounded, they added 10–50 MB to the 100k backlog's peak; docs/BENCHMARKS.md, 37).
 */
export const STATEMENT_CACHE = { statements: 512, chars: 100_000 };

// Only row statements are kept prepared: DDL, PRAGMA and transaction control run once or go through `exec`.
const CACHEABLE = /^\s*(?:\/\*[^*]*\*\/\s*)?(?:SELECT|INSERT|UPDATE|DELETE|WITH)\b/i;

/**
 * The sqlite3 module with a Database whose `all` and `run` keep each statement text prepared. sqlite3 prepares a
 * query on its thread pool, runs it in a second trip, then finalizes it: every query pays two trips through the
 * event loop. TypeORM sends the same few texts again and again, so a statement prepared once serves them in one
 * trip (docs/BENCHMARKS.md, finding 37). A text is run the usual way the first time and prepared alongside; a
 * statement that fails is finalized and prepared again on a later call.
 */
export function withStatementCache(module: Sqlite3Module, limits = STATEMENT_CACHE): Sqlite3Module {
  const Statement = module.Statement as unknown as new (
    db: sqlite3.Database,
    sql: string,
    callback: (err: Error | null) => void,
  ) => sqlite3.Statement;
  class CachingDatabase extends module.Database {
    private readonly ready = new Map<string, sqlite3.Statement>();
    private readonly preparing = new Set<string>();
    private keptChars = 0;
    private closed = false;

    /** How many statement texts are kept prepared now. */
    get prepared(): number {
      return this.ready.size;
    }

    override all(sql: string, ...args: unknown[]): this {
      return this.cached('all', sql, args) ?? super.all(sql, ...args);
    }

    override run(sql: string, ...args: unknown[]): this {
      return this.cached('run', sql, args) ?? super.run(sql, ...args);
    }

    override close(callback?: (err: Error | null) => void): void {
      this.closed = true;
      for (const statement of this.ready.values()) statement.finalize();
      this.ready.clear();
      this.keptChars = 0;
      super.close(callback);
    }

    /** Runs `sql` on its prepared statement and returns this; undefined where the caller must run it itself. */
    private cached(method: 'all' | 'run', sql: string, args: unknown[]): this | undefined {
      const [params, callback] = args;
      if (args.length !== 2 || !Array.isArray(params) || typeof callback !== 'function') return undefined;
      const statement = this.ready.get(sql);
      if (!statement) {
        this.prepareLater(sql);
        return undefined;
      }
      // Map order is insertion order: taking the entry out and back in keeps the least recently used first.
      this.ready.delete(sql);
      this.ready.set(sql, statement);
      const done = callback as Callback;
      const forget = (): void => this.forget(sql, statement);
      statement[method](params, function (this: sqlite3.Statement, err: Error | null, rows?: unknown[]) {
        if (err) forget();
        done.call(this, err, rows);
      });
      return this;
    }

    private prepareLater(sql: string): void {
      if (this.closed || sql.length > limits.chars || this.preparing.has(sql) || !CACHEABLE.test(sql)) return;
      this.preparing.add(sql);
      // Database#prepare calls back only on failure; the Statement constructor calls back either way.
      const statement = new Statement(this, sql, (err: Error | null) => {
        this.preparing.delete(sql);
        if (err) return; // a statement that failed to prepare is finalized by sqlite3; the caller's run reports it
        if (this.closed) return void statement.finalize();
        this.ready.set(sql, statement);
        this.keptChars += sql.length;
        while (this.ready.size > limits.statements || this.keptChars > limits.chars) {
          const [oldest, old] = this.ready.entries().next().value as [string, sqlite3.Statement];
          this.forget(oldest, old);
        }
      });
    }

    /** Finalizes a statement still held; one finalized twice would emit an unhandled 'error'. */
    private forget(sql: string, statement: sqlite3.Statement): void {
      if (this.ready.get(sql) !== statement) return;
      this.ready.delete(sql);
      this.keptChars -= sql.length;
      statement.finalize();
    }
  }
  return Object.assign(Object.create(module) as Sqlite3Module, { Database: CachingDatabase });
}
