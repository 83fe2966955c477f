import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A tenant-wide event cursor (issue 22): `tenants.event_cursor` is the last cursor handed out, bumped inside each
 * event-writing transaction, and `task_events.event_cursor` the event's place in its tenant's stream. Existing
 * events are numbered in the order they happened. The same SQL runs on SQLite (3.33+: UPDATE … FROM) and PostgreSQL.
 */
export class EventCursor1765200000000 implements MigrationInterface {
  name = 'EventCursor1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE tenants ADD COLUMN event_cursor bigint NOT NULL DEFAULT 0');
    await q.query('ALTER TABLE task_events ADD COLUMN event_cursor bigint NOT NULL DEFAULT 0');
    await q.query(
      `UPDATE task_events SET event_cursor = r.n FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY created_at, task_id, sequence) AS n FROM task_events) AS r WHERE task_events.id = r.id`,
    );
    await q.query(
      'UPDATE tenants SET event_cursor = COALESCE((SELECT MAX(e.event_cursor) FROM task_events e WHERE e.tenant_id = tenants.id), 0)',
    );
    await q.query('CREATE UNIQUE INDEX uq_task_events_cursor ON task_events (tenant_id, event_cursor)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX uq_task_events_cursor');
    await q.query('ALTER TABLE task_events DROP COLUMN event_cursor');
    await q.query('ALTER TABLE tenants DROP COLUMN event_cursor');
  }
}
