import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sqlite3 from 'sqlite3';
import { DataSource, DataSourceOptions } from 'typeorm';
import type { HeraldConfig } from '../config/config.js';
import { MIGRATIONS } from './migrations/index.js';
import { withStatementCache } from './sqlite-statements.js';

/** `entities`: the app's entity list (src/entities.ts); none where only migrations and raw SQL run. */
export function dataSourceOptions(
  config: HeraldConfig,
  entities: NonNullable<DataSourceOptions['entities']> = [],
): DataSourceOptions {
  const common = { entities, migrations: MIGRATIONS, synchronize: false, logging: false } as const;
  if (config.database.type === 'postgres') {
    return { ...common, type: 'postgres', url: config.database.url, extra: { max: 20 } };
  }
  mkdirSync(path.dirname(config.database.path), { recursive: true });
  // TypeORM calls sqlite3.verbose(), which wraps every database call to capture a stack trace: ~4 % of the CPU
  // under load, for nicer traces of errors we report ourselves. Hand it the module with tracing left off, and
  // with statements kept prepared.
  const module = withStatementCache(sqlite3);
  const driver = { verbose: () => module };
  return { ...common, type: 'sqlite', database: config.database.path, enableWAL: true, busyTimeout: 10_000, driver };
}

// Any constant works; it only has to be the same for every Herald process sharing the database.
const MIGRATION_LOCK_ID = 738_201_455;

/** Applies pending migrations; on PostgreSQL under an advisory lock so several starting processes don't race. */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  if (ds.options.type !== 'postgres') return (await ds.runMigrations({ transaction: 'each' })).map((m) => m.name);
  const runner = ds.createQueryRunner();
  await runner.connect();
  try {
    await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    return (await ds.runMigrations({ transaction: 'each' })).map((m) => m.name);
  } finally {
    await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => undefined);
    await runner.release();
  }
}

export async function openDatabase(options: DataSourceOptions, { migrate }: { migrate: boolean }): Promise<DataSource> {
  const ds = new DataSource(options);
  try {
    await ds.initialize();
  } catch (err) {
    throw new Error(`Cannot open the database (${describeDatabase(options)}): ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (ds.options.type === 'sqlite') {
    // NORMAL is durable under WAL across process crashes; only a power loss may drop the last commits.
    await ds.query('PRAGMA synchronous = NORMAL');
    await ds.query('PRAGMA foreign_keys = ON');
  }
  if (migrate) await runMigrations(ds);
  return ds;
}

/** Where the database is, without credentials, for messages. */
export function describeDatabase(options: DataSourceOptions): string {
  if (options.type === 'sqlite') return `sqlite:${options.database}`;
  if (options.type === 'postgres' && options.url) {
    const url = new URL(options.url);
    return `postgres://${url.host}${url.pathname}`;
  }
  return options.type;
}
