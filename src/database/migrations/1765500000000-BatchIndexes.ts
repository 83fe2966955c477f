import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Batch delivery claims by endpoint: the pending deliveries of one target, oldest first, and the events of one
 * batch. Without these each batch claim walked every pending delivery (partial indexes: only the rows it reads).
 */
export class BatchIndexes1765500000000 implements MigrationInterface {
  name = 'BatchIndexes1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      "CREATE INDEX idx_deliveries_target_pending ON deliveries (target, next_attempt_at) WHERE status = 'pending'",
    );
    // Failed batches waiting to go again: few rows, looked for at every batch claim.
    await q.query(
      "CREATE INDEX idx_deliveries_batch_again ON deliveries (target, next_attempt_at) WHERE status = 'pending' AND batch_id IS NOT NULL",
    );
    await q.query('CREATE INDEX idx_deliveries_batch ON deliveries (batch_id) WHERE batch_id IS NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX idx_deliveries_batch');
    await q.query('DROP INDEX idx_deliveries_batch_again');
    await q.query('DROP INDEX idx_deliveries_target_pending');
  }
}
