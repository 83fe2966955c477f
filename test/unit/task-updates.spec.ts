import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DataSource } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { Tenant } from '../../src/auth/tenant.entity.js';
import { loadConfig } from '../../src/config/config.js';
import { dataSourceOptions, openDatabase } from '../../src/database/data-source.js';
import { ENTITIES } from '../../src/entities.js';
import { Task } from '../../src/tasks/task.entity.js';
import type { TaskStatus } from '../../src/tasks/task-state.js';
import { groupByShape, updateTasks, type TaskUpdate } from '../../src/tasks/task-updates.js';
import { createTestDatabase } from '../support/herald.js';

const progress = (taskId: string, percent: number, attempt: number): TaskUpdate => ({
  taskId,
  to: 'processing',
  patch: { progress: percent, message: 'Rendering image' },
  guard: { from: ['processing'], attempt },
});

const META = { resolution: '1x1', file_size_bytes: 1, mime_type: 'image/png', seed: 1 };

describe('groupByShape', () => {
  it('puts changes of one shape together whatever their values, and apart from other shapes', () => {
    const started: TaskUpdate = {
      taskId: 'c',
      to: 'processing',
      patch: { progress: 0, message: 'Generation started', startedAt: new Date() },
      guard: { from: ['pending'], attempt: 1 },
    };
    const unguarded: TaskUpdate = { ...progress('e', 50, 1), guard: { from: ['processing'] } };
    const leased: TaskUpdate = { ...progress('f', 50, 1), guard: { from: ['processing'], lease: { id: 'l1' } } };
    const updates = [progress('a', 10, 1), progress('b', 40, 2), started, unguarded, progress('d', 90, 1), leased];
    expect(groupByShape(updates)).toEqual([[0, 1, 4], [2], [3], [5]]);
  });

  it('does not tell apart a property left undefined from one not named', () => {
    const a = progress('a', 10, 1);
    const b: TaskUpdate = {
      ...progress('b', 20, 1),
      patch: { progress: 20, message: 'Rendering image', error: undefined },
    };
    expect(groupByShape([a, b])).toEqual([[0, 1]]);
  });
});

// Real databases: the statement's CASE lists and PostgreSQL's casts are what could go wrong.
describe.each(['sqlite', 'postgres'] as const)('updateTasks on %s', (kind) => {
  let dir: string;
  let db: DataSource;
  let drop: (() => Promise<void>) | undefined;
  const tenantId = uuidv7();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-updates-'));
    const database = await createTestDatabase(dir, kind);
    drop = database.drop;
    const config = loadConfig({ DATA_DIR: dir, DATABASE_URL: database.url });
    db = await openDatabase(dataSourceOptions(config, ENTITIES), { migrate: true });
    await db
      .getRepository(Tenant)
      .insert({ id: tenantId, name: 'updates', webhookSecretSealed: 'x', eventCursor: 0, createdAt: new Date() });
  });

  afterAll(async () => {
    await db?.destroy();
    await drop?.();
    rmSync(dir, { recursive: true, force: true });
  });

  async function task(status: TaskStatus, attempt = 1, lease: Partial<Task> = {}): Promise<string> {
    const id = uuidv7();
    const now = new Date();
    const tasks = db.getRepository(Task);
    await tasks.save(
      tasks.create({
        id,
        tenantId,
        kind: 'image',
        status,
        progress: 0,
        model: 'm',
        prompt: 'p',
        options: {},
        params: {},
        estimatedDurationMs: 1000,
        attempt,
        lastSequence: 1,
        createdAt: now,
        updatedAt: now,
        ...lease,
      }),
    );
    return id;
  }

  it('changes each task by its own values and guard in one statement, and answers null where the guard fails', async () => {
    const [a, b, c, d] = [
      await task('processing'),
      await task('processing', 2),
      await task('processing'),
      await task('pending'),
    ];
    const answers = await db.transaction((em) =>
      updateTasks(em, [progress(a, 30, 1), progress(b, 60, 2), progress(c, 90, 2), progress(d, 10, 1)]),
    );
    expect(answers.map((t) => t?.progress ?? null)).toEqual([30, 60, null, null]);
    expect(answers[0]).toMatchObject({ id: a, status: 'processing', lastSequence: 2, message: 'Rendering image' });
    expect(answers[1]).toMatchObject({ id: b, attempt: 2, lastSequence: 2 });
    expect(answers[0]!.updatedAt).toBeInstanceOf(Date);
    const stored = await db.getRepository(Task).findBy({});
    const byId = new Map(stored.map((t) => [t.id, t]));
    expect([a, b, c, d].map((id) => [byId.get(id)!.progress, byId.get(id)!.lastSequence])).toEqual([
      [30, 2],
      [60, 2],
      [0, 1],
      [0, 1],
    ]);
  });

  it('sets JSON and timestamp columns that differ per task, and holds each to its own live lease', async () => {
    const soon = new Date(Date.now() + 60_000);
    const past = new Date(Date.now() - 60_000);
    const [a, b, c] = [
      await task('processing', 1, { leaseId: 'la', leaseExpiresAt: soon }),
      await task('processing', 1, { leaseId: 'lb', leaseExpiresAt: soon }),
      await task('processing', 1, { leaseId: 'lc', leaseExpiresAt: past }),
    ];
    const done = (taskId: string, lease: string, url: string, at: Date): TaskUpdate => ({
      taskId,
      to: 'completed',
      patch: { progress: 100, completedAt: at, result: { created: 1, model: 'm', data: [{ url, metadata: META }] } },
      guard: { from: ['processing'], lease: { id: lease, liveAt: new Date() } },
    });
    const [t1, t2] = [new Date(1_700_000_000_000), new Date(1_700_000_000_500)];
    const answers = await db.transaction((em) =>
      updateTasks(em, [
        done(a, 'la', 'http://x/a', t1),
        done(b, 'wrong', 'http://x/b', t1),
        done(c, 'lc', 'http://x/c', t2),
      ]),
    );
    expect(answers[1]).toBeNull();
    expect(answers[2]).toBeNull();
    expect(answers[0]).toMatchObject({
      status: 'completed',
      completedAt: t1,
      result: { data: [{ url: 'http://x/a' }] },
    });
    const [da, dc] = [
      await db.getRepository(Task).findOneBy({ id: a }),
      await db.getRepository(Task).findOneBy({ id: c }),
    ];
    expect(da).toMatchObject({ status: 'completed', completedAt: t1 });
    expect(dc).toMatchObject({ status: 'processing', completedAt: null, result: null });
  });

  it.skipIf(kind !== 'sqlite')('looks each row up by its id, not through the status index (SQLite plan)', async () => {
    const [a, b] = [await task('processing'), await task('processing')];
    const sent: Array<[string, unknown[]]> = [];
    await db.transaction(async (em) => {
      const spy = new Proxy(em, {
        get: (target, key) =>
          key === 'query'
            ? (text: string, params: unknown[]) => (sent.push([text, params]), target.query(text, params))
            : Reflect.get(target, key),
      });
      await updateTasks(spy, [progress(a, 20, 1), progress(b, 30, 1)]);
    });
    const [text, params] = sent.find(([t]) => t.includes('UPDATE tasks'))!;
    const plan = await db.query<Array<{ detail: string }>>(`EXPLAIN QUERY PLAN ${text}`, params);
    expect(plan.map((r) => r.detail).join(' | ')).toMatch(
      /SEARCH tasks USING INDEX sqlite_autoindex_tasks_1 \(id=\?\)/,
    );
  });

  it('holds a change to no lease, and keeps text JSON would change (SQLite writes such values inline)', async () => {
    const [a, b] = [await task('processing'), await task('processing', 1, { leaseId: 'held' })];
    // PostgreSQL refuses a NUL in text whatever the statement; SQLite stores it, and a lone surrogate as U+FFFD.
    const odd = kind === 'sqlite' ? 'half \u0000 done \ud800' : 'half done';
    const noLease = (taskId: string, message: string): TaskUpdate => ({
      taskId,
      to: 'processing',
      patch: { progress: 50, message },
      guard: { from: ['processing'], lease: { id: null } },
    });
    const answers = await db.transaction((em) => updateTasks(em, [noLease(a, odd), noLease(b, 'other')]));
    expect(answers[1]).toBeNull();
    const stored = await db.getRepository(Task).findOneBy({ id: a });
    expect(stored!.message).toBe(odd.replace('\ud800', '\ufffd'));
    expect(answers[0]!.message).toBe(stored!.message);
  });
});
