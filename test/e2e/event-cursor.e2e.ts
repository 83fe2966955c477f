import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataSource } from 'typeorm';
import { Tenant } from '../../src/auth/tenant.entity.js';
import { UnitOfWork } from '../../src/database/unit-of-work.js';
import { TaskTransitions } from '../../src/tasks/task-transitions.service.js';
import { Task } from '../../src/tasks/task.entity.js';
import { startTestHerald, testDb, type TestHerald } from '../support/herald.js';

let h: TestHerald;
beforeAll(async () => {
  h = await startTestHerald();
});
afterAll(async () => {
  await h?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `count` tasks that stay in flight for an hour, as stored: the tests change them and write their events. */
async function longTasks(count: number): Promise<Task[]> {
  const created = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      h.api('POST', '/v1/videos/generations/async', {
        model: 'm',
        prompt: `w${i}`,
        simulate: { duration_ms: 3_600_000 },
      }),
    ),
  );
  const ids = created.map((r) => r.body.task_id as string);
  return h.herald.app
    .get(DataSource)
    .getRepository(Task)
    .findBy(ids.map((id) => ({ id })));
}

/** Every event's cursor, in order. */
async function allCursors(): Promise<number[]> {
  const rows = await h.herald.app.get(DataSource).query('SELECT event_cursor FROM task_events ORDER BY event_cursor');
  return rows.map((r: { event_cursor: string | number }) => Number(r.event_cursor));
}

describe(`the tenant event cursor (${testDb()})`, () => {
  // On PostgreSQL, transactions on several connections commit in any order. Each writer here claims its cursors
  // and then waits a random moment before COMMIT, which would let a later cursor commit first if cursors were
  // taken from a sequence; the per-tenant counter row makes the later writer wait instead.
  it(
    'never lets a reader paging with after= skip an event, with many concurrent writers on several connections',
    { timeout: 120_000 },
    async () => {
      const tasks = await longTasks(8);
      const taskIds = tasks.map((t) => t.id);
      const db = h.herald.app.get(DataSource);
      const uow = h.herald.app.get(UnitOfWork);
      const transitions = h.herald.app.get(TaskTransitions);

      let writing = true;
      const writers = tasks.map(async (task, w) => {
        for (let round = 0; round < 30; round++) {
          const count = 1 + ((w + round) % 3);
          await uow.run(async (em) => {
            const entries = Array.from({ length: count }, (_, k) => ({
              task: Object.assign(new Task(), task, { lastSequence: 10_000 + round * 10 + k }),
              type: 'task.progress' as const,
            }));
            await transitions.recordEvents(em, entries);
            await sleep(Math.random() * 6);
          });
          transitions.announce(task.tenantId);
        }
      });

      const seen: Array<{ id: string; cursor: string }> = [];
      const reader = (async () => {
        let after = '0';
        for (;;) {
          const stillWriting = writing;
          const page = await h.api('GET', `/v1/events?after=${after}&limit=50&types=task.progress`);
          expect(page.status).toBe(200);
          seen.push(...page.body.data);
          if (page.body.data.length) after = page.body.data.at(-1).cursor;
          if (!stillWriting && !page.body.next_cursor) return;
          if (!page.body.data.length) await sleep(1);
        }
      })();
      await Promise.all(writers);
      writing = false;
      await reader;

      const rows = await db.query(
        `SELECT id, event_cursor FROM task_events WHERE type = 'task.progress' AND task_id IN (${taskIds.map((id) => `'${id}'`).join(',')}) ORDER BY event_cursor`,
      );
      expect(rows.length).toBe(8 * 30 * 2);
      expect(seen.map((e) => e.id)).toEqual(rows.map((r: { id: string }) => r.id));
      // Dense within the tenant: every cursor from the first to the last, once.
      const all = await allCursors();
      expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    },
  );

  it('numbers the events of a round densely when some of its changes do not apply', async () => {
    const tasks = await longTasks(4);
    const transitions = h.herald.app.get(TaskTransitions);
    // Once started, a task of an hour writes no event of its own for minutes: the counts below are this round's.
    const repo = h.herald.app.get(DataSource).getRepository(Task);
    for (let i = 0; i < 500 && (await repo.countBy(tasks.map((t) => ({ id: t.id, status: 'processing' })))) < 4; i++)
      await sleep(10);
    // One round (asked for in the same tick): two changes apply, and two are refused by their guards.
    const answers = await Promise.all(
      tasks.map((t, i) =>
        transitions.apply(
          t.id,
          'cancelled',
          { message: 'gone' },
          { from: i % 2 ? ['pending', 'processing'] : ['completed'] },
          t.tenantId,
        ),
      ),
    );
    expect(answers.filter(Boolean)).toHaveLength(2);
    const cursors = await allCursors();
    expect(cursors).toEqual(Array.from({ length: cursors.length }, (_, i) => i + 1));
    const tenant = await h.herald.app.get(DataSource).getRepository(Tenant).findOneByOrFail({ id: tasks[0].tenantId });
    expect(Number(tenant.eventCursor)).toBe(cursors.length);
  });
});
