import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

const id = { name: 'id', type: 'varchar', length: '36', isPrimary: true };
const tenantId = { name: 'tenant_id', type: 'varchar', length: '36' };
const epoch = (name: string, isNullable = false) => ({ name, type: 'bigint', isNullable });

/** Tenants, API keys, tasks and their events. Built with the Table API so one migration serves SQLite and PostgreSQL. */
export class Initial1763800000000 implements MigrationInterface {
  name = 'Initial1763800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'tenants',
        columns: [
          id,
          { name: 'name', type: 'varchar', length: '100', isUnique: true },
          { name: 'webhook_secret', type: 'text' },
          epoch('created_at'),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'api_keys',
        columns: [
          id,
          tenantId,
          { name: 'label', type: 'varchar', length: '200', isNullable: true },
          { name: 'prefix', type: 'varchar', length: '16' },
          { name: 'key_hash', type: 'varchar', length: '64' },
          epoch('created_at'),
          epoch('revoked_at', true),
        ],
        indices: [
          new TableIndex({ name: 'uq_api_keys_hash', columnNames: ['key_hash'], isUnique: true }),
          new TableIndex({ name: 'idx_api_keys_tenant', columnNames: ['tenant_id'] }),
        ],
        foreignKeys: [{ columnNames: ['tenant_id'], referencedTableName: 'tenants', referencedColumnNames: ['id'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'tasks',
        columns: [
          id,
          tenantId,
          { name: 'kind', type: 'varchar', length: '16' },
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'progress', type: 'integer', default: 0 },
          { name: 'message', type: 'text', isNullable: true },
          { name: 'model', type: 'varchar', length: '200' },
          { name: 'prompt', type: 'text' },
          { name: 'options', type: 'text' },
          { name: 'params', type: 'text' },
          { name: 'metadata', type: 'text', isNullable: true },
          { name: 'webhook_url', type: 'text', isNullable: true },
          { name: 'webhook_headers', type: 'text', isNullable: true },
          { name: 'webhook_header_names', type: 'text', isNullable: true },
          { name: 'webhook_events', type: 'text', isNullable: true },
          { name: 'webhook_retry', type: 'text', isNullable: true },
          { name: 'simulate', type: 'text', isNullable: true },
          { name: 'timeout_seconds', type: 'integer', isNullable: true },
          epoch('deadline_at', true),
          { name: 'estimated_duration_ms', type: 'integer' },
          { name: 'attempt', type: 'integer', default: 1 },
          { name: 'result', type: 'text', isNullable: true },
          { name: 'error', type: 'text', isNullable: true },
          { name: 'error_code', type: 'varchar', length: '64', isNullable: true },
          { name: 'last_sequence', type: 'integer', default: 0 },
          epoch('created_at'),
          epoch('updated_at'),
          epoch('started_at', true),
          epoch('completed_at', true),
        ],
        indices: [
          new TableIndex({ name: 'idx_tasks_tenant_id', columnNames: ['tenant_id', 'id'] }),
          new TableIndex({ name: 'idx_tasks_status_updated', columnNames: ['status', 'updated_at'] }),
        ],
        foreignKeys: [{ columnNames: ['tenant_id'], referencedTableName: 'tenants', referencedColumnNames: ['id'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'task_events',
        columns: [
          id,
          { name: 'task_id', type: 'varchar', length: '36' },
          tenantId,
          { name: 'sequence', type: 'integer' },
          { name: 'type', type: 'varchar', length: '32' },
          { name: 'data', type: 'text' },
          epoch('created_at'),
        ],
        indices: [
          new TableIndex({ name: 'uq_task_events_sequence', columnNames: ['task_id', 'sequence'], isUnique: true }),
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
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['task_events', 'tasks', 'api_keys', 'tenants']) await q.dropTable(table);
  }
}
