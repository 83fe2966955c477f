import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

const epoch = (name: string, isNullable = false) => ({ name, type: 'bigint', isNullable });

/** Registered webhook endpoints. */
export class Endpoints1764000000000 implements MigrationInterface {
  name = 'Endpoints1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'webhook_endpoints',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '36' },
          { name: 'url', type: 'text' },
          { name: 'description', type: 'varchar', length: '500', isNullable: true },
          { name: 'events', type: 'text' },
          { name: 'headers_sealed', type: 'text', isNullable: true },
          { name: 'header_names', type: 'text' },
          { name: 'secret_sealed', type: 'text' },
          { name: 'previous_secret_sealed', type: 'text', isNullable: true },
          epoch('previous_secret_expires_at', true),
          { name: 'status', type: 'varchar', length: '16' },
          { name: 'disabled_reason', type: 'text', isNullable: true },
          epoch('disabled_at', true),
          epoch('failing_since', true),
          epoch('last_delivery_at', true),
          { name: 'last_status_code', type: 'integer', isNullable: true },
          { name: 'last_outcome', type: 'varchar', length: '16', isNullable: true },
          epoch('created_at'),
          epoch('updated_at'),
        ],
        indices: [new TableIndex({ name: 'idx_endpoints_tenant_status', columnNames: ['tenant_id', 'status'] })],
        foreignKeys: [{ columnNames: ['tenant_id'], referencedTableName: 'tenants', referencedColumnNames: ['id'] }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('webhook_endpoints');
  }
}
