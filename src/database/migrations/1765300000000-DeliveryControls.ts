import { MigrationInterface, QueryRunner, Table, TableColumn } from 'typeorm';

/**
 * Delivery controls: one circuit per target URL (shared by every worker through the database, read and written in
 * the same transactions as the claims and attempts it governs), and the per-endpoint rate limit and batch settings.
 */
export class DeliveryControls1765300000000 implements MigrationInterface {
  name = 'DeliveryControls1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'webhook_circuits',
        columns: [
          { name: 'url', type: 'varchar', length: '2048', isPrimary: true },
          { name: 'state', type: 'varchar', length: '16' },
          { name: 'failures', type: 'integer' },
          { name: 'openings', type: 'integer' },
          { name: 'until', type: 'bigint', isNullable: true },
          { name: 'updated_at', type: 'bigint' },
        ],
      }),
    );
    await q.addColumns('webhook_endpoints', [
      new TableColumn({ name: 'rate_limit_per_second', type: 'integer', isNullable: true }),
      new TableColumn({ name: 'batch_max_events', type: 'integer', isNullable: true }),
      new TableColumn({ name: 'batch_max_wait_ms', type: 'integer', isNullable: true }),
    ]);
    // The batch a delivery went (or goes again) in: the id of the delivery that carries it. A redelivery is sent alone.
    await q.addColumns('deliveries', [
      new TableColumn({ name: 'batch_id', type: 'varchar', length: '36', isNullable: true }),
      new TableColumn({ name: 'send_alone', type: 'boolean', default: false }),
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('deliveries', 'send_alone');
    await q.dropColumn('deliveries', 'batch_id');
    await q.dropColumn('webhook_endpoints', 'batch_max_wait_ms');
    await q.dropColumn('webhook_endpoints', 'batch_max_events');
    await q.dropColumn('webhook_endpoints', 'rate_limit_per_second');
    await q.dropTable('webhook_circuits');
  }
}
