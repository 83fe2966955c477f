import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

const epoch = (name: string, isNullable = false) => ({ name, type: 'bigint', isNullable });

/** The webhook outbox: deliveries (one event to one target) and their attempts. */
export class Deliveries1763900000000 implements MigrationInterface {
  name = 'Deliveries1763900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'deliveries',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '36' },
          // Null for events that belong to no task (webhook.test, webhook.disabled).
          { name: 'task_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'event_id', type: 'varchar', length: '36' },
          { name: 'event_type', type: 'varchar', length: '32' },
          { name: 'sequence', type: 'integer' },
          { name: 'target', type: 'varchar', length: '36' },
          { name: 'url', type: 'text' },
          { name: 'headers_sealed', type: 'text', isNullable: true },
          { name: 'payload', type: 'text' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'attempts', type: 'integer', default: 0 },
          { name: 'schedule', type: 'text' },
          epoch('next_attempt_at'),
          epoch('dispatched_at', true),
          { name: 'last_status_code', type: 'integer', isNullable: true },
          { name: 'last_error', type: 'text', isNullable: true },
          epoch('created_at'),
          epoch('updated_at'),
          epoch('completed_at', true),
        ],
        indices: [
          new TableIndex({ name: 'idx_deliveries_status_next', columnNames: ['status', 'next_attempt_at'] }),
          new TableIndex({ name: 'idx_deliveries_task_target', columnNames: ['task_id', 'target', 'sequence'] }),
          new TableIndex({ name: 'idx_deliveries_tenant', columnNames: ['tenant_id', 'id'] }),
        ],
        foreignKeys: [
          {
            columnNames: ['task_id'],
            referencedTableName: 'tasks',
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'delivery_attempts',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'delivery_id', type: 'varchar', length: '36' },
          { name: 'number', type: 'integer' },
          epoch('started_at'),
          { name: 'duration_ms', type: 'integer' },
          { name: 'status_code', type: 'integer', isNullable: true },
          { name: 'error', type: 'text', isNullable: true },
          { name: 'response_snippet', type: 'text', isNullable: true },
          { name: 'request_headers', type: 'text' },
          { name: 'outcome', type: 'varchar', length: '16' },
        ],
        indices: [new TableIndex({ name: 'idx_attempts_delivery', columnNames: ['delivery_id', 'number'] })],
        foreignKeys: [
          {
            columnNames: ['delivery_id'],
            referencedTableName: 'deliveries',
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('delivery_attempts');
    await q.dropTable('deliveries');
  }
}
