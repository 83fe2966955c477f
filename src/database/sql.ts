import type { DataSource, EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import pg from 'pg';

/**
 * Plain SQL for the few statements on every webhook's path (claim, attempt log, outcome). TypeORM's query
 * builders spent ~6 % of the worker's CPU composing these same statements again for every batch; here they are
 * written once, with positional parameters in the dialect of the data source. Values must already be in their
 * stored form (timestamps as epoch ms, JSON as text).
 */
export class Sql {
  /** Whether the data source is PostgreSQL (else SQLite): the dialect, and what the caller may rely on. */
  readonly postgres: boolean;

  constructor(db: DataSource) {
    this.postgres = db.options.type === 'postgres';
  }

  /** `count` placeholders, numbered from `from` (PostgreSQL's $n), joined by commas: `?, ?` or `$3, $4`. */
  params(count: number, from = 1): string {
    return Array.from({ length: count }, (_, i) => (this.postgres ? `$${from + i}` : '?')).join(', ');
  }

  /** `(…), (…)` for a multi-row VALUES of `rows` rows of `width` values each, numbered from `from`. */
  rows(rows: number, width: number, from = 1): string {
    return Array.from({ length: rows }, (_, r) => `(${this.params(width, from + r * width)})`).join(', ');
  }

  /**
   * The rows of an `UPDATE … RETURNING` on both databases. TypeORM's SQLite runner sends a statement that starts
   * with "UPDATE " through sqlite3's `run`, which drops the rows (SQLite has RETURNING since 3.35); one that starts
   * with a comment goes through `all`, which keeps them.
   */
  async updateReturning<T>(em: EntityManager, text: string, params: unknown[]): Promise<T[]> {
    if (this.postgres) return this.returned<T>(await em.query(text, params));
    return em.query<T[]>(`/* returning */ ${text}`, params);
  }

  /** What a data-modifying statement's result says about the rows it touched (`RETURNING` rows on PostgreSQL). */
  returned<T>(result: unknown): T[] {
    return this.postgres ? returningRows<T>(result) : [];
  }
}

/** The rows of a PostgreSQL `UPDATE … RETURNING` as TypeORM answers it: [rows, count]. */
export function returningRows<T>(result: unknown): T[] {
  return Array.isArray(result) && Array.isArray(result[0]) ? (result[0] as T[]) : [];
}

/**
 * A multi-row INSERT of whole entities: each column converted by TypeORM's driver (transformers, JSON), the
 * statement written here. Used where rows are inserted in batches on a hot path (intake, events, deliveries,
 * attempts). A property left undefined takes its column's literal default, else NULL.
 */
export async function insertMany<T extends ObjectLiteral>(
  em: EntityManager,
  target: EntityTarget<T>,
  entities: readonly T[],
): Promise<void> {
  const statement = insertStatement(em, target, entities);
  if (statement) await em.query(statement.text, statement.params);
}

/** A statement with its positional parameters, for a caller that sends it later (writeAtCommit, commitWrites). */
export interface Statement {
  text: string;
  params: unknown[];
}

/** insertMany's statement, for a caller that sends it another way (writeAtCommit); undefined for no rows. */
export function insertStatement<T extends ObjectLiteral>(
  em: EntityManager,
  target: EntityTarget<T>,
  entities: readonly T[],
): Statement | undefined {
  if (entities.length === 0) return undefined;
  const meta = em.connection.getMetadata(target);
  const driver = em.connection.driver;
  const columns = meta.columns.filter((c) => c.isInsert && !c.isVirtual);
  const rows = entities.map((entity) =>
    columns.map((c): unknown => {
      const value: unknown = c.getEntityValue(entity);
      if (value === undefined) return typeof c.default === 'function' || c.default === undefined ? null : c.default;
      return driver.preparePersistentValue(value, c) ?? null;
    }),
  );
  const names = columns.map((c) => driver.escape(c.databaseName)).join(', ');
  const sql = new Sql(em.connection);
  const into = `INSERT INTO ${driver.escape(meta.tableName)} (${names})`;
  // Values JSON would not give back as bound (jsonSafe) keep the bound VALUES on SQLite too.
  if (sql.postgres || !rows.every((row) => row.every(jsonSafe)))
    return { text: `${into} VALUES ${sql.rows(entities.length, columns.length)}`, params: rows.flat() };
  // SQLite: the rows as one JSON parameter, read back by json_each. One statement text whatever the number of
  // rows, so it stays prepared, and one value to bind instead of hundreds, bound on the event loop's thread
  // (docs/BENCHMARKS.md, finding 38).
  const picks = columns.map((_, i) => `value->>${i}`).join(', ');
  return { text: `${into} SELECT ${picks} FROM json_each(?)`, params: [JSON.stringify(rows)] };
}

/**
 * A value that comes back from SQLite's JSON functions as it would be bound (a boolean as 1 or 0, as sqlite3 binds
 * it). Not text with a NUL (they end text there) or a lone surrogate (the u flag's \p{Cs}: they decode it to bytes
 * that are not UTF-8, where binding stores U+FFFD), nor bytes, dates or numbers JSON cannot write.
 */
export function jsonSafe(value: unknown): boolean {
  if (typeof value === 'string') return !UNSAFE_TEXT.test(value);
  return value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

const UNSAFE_TEXT = /[\0\p{Cs}]/u;

/**
 * Statements of one transaction that do not depend on each other. SQLite: sent together and awaited once, instead
 * of one wait each (every wait is a trip to the driver's thread and back through a busy event loop); they may run
 * in any order, and all settle before the first failure is thrown, so none reaches the database after the
 * caller's ROLLBACK. PostgreSQL: one after another (pg deprecates a second query on a client already busy).
 */
export async function together<T>(em: EntityManager, statements: ReadonlyArray<() => Promise<T>>): Promise<T[]> {
  if (new Sql(em.connection).postgres) {
    const values: T[] = [];
    for (const statement of statements) values.push(await statement());
    return values;
  }
  const settled = await Promise.allSettled(statements.map((statement) => statement()));
  return settled.map((s) => {
    if (s.status === 'rejected') throw s.reason;
    return s.value;
  });
}

/**
 * The reverse of insertMany: a row as the database returned it (column names; SQLite numbers, PostgreSQL bigint as
 * text) → the entity, each column converted by TypeORM's driver. For hand-written SELECTs on a hot path.
 */
export function entityFromRow<T extends ObjectLiteral>(
  em: EntityManager,
  target: EntityTarget<T>,
  row: Record<string, unknown>,
): T {
  const meta = em.connection.getMetadata(target);
  const entity = meta.create() as T;
  for (const c of meta.columns)
    if (c.databaseName in row)
      c.setEntityValue(entity, em.connection.driver.prepareHydratedValue(row[c.databaseName], c));
  return entity;
}

/**
 * A column compared in a WHERE that already picks its rows by key (`id IN (…) AND status = …`), written so that no
 * index on it can be chosen: SQLite, which has no statistics, otherwise walks a status index over every row of that
 * status instead of the key (a delivery batch claim so read the whole pending backlog, 7 ms per batch at 20,000; a
 * task UPDATE by JSON, every task of its status once per row); PostgreSQL, before its first ANALYZE of a freshly
 * loaded backlog, ANDs that index's bitmap in too.
 */
export function byKey(column: string): string {
  return `(${column} || '')`;
}

/**
 * A statement with its parameters written in as literals, to be sent with others in one trip: SQLite's `?` for
 * sqlite3's `exec`, which takes none (undefined when a value is not one jsonSafe takes; booleans are written 1 / 0,
 * as sqlite3 binds them); PostgreSQL's `$n` for a simple query, which may hold several statements (each value
 * quoted as node-postgres would send it, an untyped text the server reads as the parameter's type). Undefined when
 * the counts differ. A placeholder inside a quoted string, a quoted name or a comment is not a parameter.
 */
export function inlineParams(
  text: string,
  params: readonly unknown[],
  { postgres = false }: { postgres?: boolean } = {},
): string | undefined {
  const literals: string[] = [];
  for (const value of params) {
    const literal = postgres ? postgresLiteral(value) : sqliteLiteral(value);
    if (literal === undefined) return undefined;
    literals.push(literal);
  }
  let out = '';
  let next = 0;
  const used = new Set<number>();
  for (const [i, part] of text.split(postgres ? QUOTED_OR_NUMBERED : QUOTED_OR_PARAM).entries()) {
    if (i % 2 === 0 || !(postgres ? part.startsWith('$') : part === '?')) out += part;
    else {
      const at = postgres ? Number(part.slice(1)) - 1 : next++;
      if (!(at >= 0 && at < literals.length)) return undefined;
      used.add(at);
      out += literals[at];
    }
  }
  return used.size === literals.length ? out : undefined;
}

// A capture group makes split keep each match at the odd indexes: quoted strings and names, comments, and `?`.
const QUOTED_OR_PARAM = /('(?:[^']|'')*'|"(?:[^"]|"")*"|\/\*[\s\S]*?\*\/|--[^\n]*|\?)/;
// The same with PostgreSQL's `$n`, and E'' strings, in which a backslash escapes the quote after it (Herald writes
// no dollar-quoted strings).
const QUOTED_OR_NUMBERED = /([Ee]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|\/\*[\s\S]*?\*\/|--[^\n]*|\$\d+)/;

// node-postgres's own conversion of a parameter to its text (dates, arrays, JSON), untyped in @types/pg.
const { prepareValue } = (pg as unknown as { utils: { prepareValue: (value: unknown) => unknown } }).utils;

function postgresLiteral(value: unknown): string | undefined {
  const prepared = prepareValue(value);
  if (prepared === null || prepared === undefined) return 'NULL';
  return typeof prepared === 'string' ? pg.escapeLiteral(prepared) : undefined; // a Buffer: bound instead
}

function sqliteLiteral(value: unknown): string | undefined {
  if (!jsonSafe(value)) return undefined;
  if (value === null) return 'NULL';
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  return typeof value === 'number' ? String(value) : undefined; // jsonSafe leaves only finite numbers here
}
