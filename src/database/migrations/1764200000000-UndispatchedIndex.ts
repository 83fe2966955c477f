import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The relay looks for pending deliveries not yet handed to the queue. With a large backlog already in the queue,
 * (status, next_attempt_at) made it step over every dispatched row on each poll; this partial index holds only
 * the undispatched ones (SQLite and PostgreSQL both support it, and the relay's `dispatched_at IS NULL` matches).
 */
export class UndispatchedIndex1764200000000 implements MigrationInterface {
  name = 'UndispatchedIndex1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE INDEX idx_deliveries_undispatched ON deliveries (status, next_attempt_at) WHERE dispatched_at IS NULL',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX idx_deliveries_undispatched');
  }
}
