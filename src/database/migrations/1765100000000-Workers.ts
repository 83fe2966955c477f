import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

const epoch = (name: string, isNullable = false) => ({ name, type: 'bigint', isNullable });

/**
 * External workers: worker tokens, the workers seen, and the lease columns on tasks. The tasks table is the
 * queue of worker-routed tasks, so the partial index holds exactly the tasks waiting for a lease, oldest first.
 */
export class Workers1765100000000 implements MigrationInterface {
  name = 'Workers1765100000000';

  async up(q: QueryRunner): Promise<void> {
    // Plain ADD COLUMN, same on both engines: TypeORM's SQLite addColumns rebuilds the table, which would take
    // its events with it through ON DELETE CASCADE.
    for (const column of [
      "provider varchar(16) NOT NULL DEFAULT 'simulator'",
      'lease_id varchar(64)',
      'lease_worker_id varchar(200)',
      'lease_expires_at bigint',
      'lease_count integer NOT NULL DEFAULT 0',
    ]) {
      await q.query(`ALTER TABLE tasks ADD COLUMN ${column}`);
    }
    await q.query(
      `CREATE INDEX idx_tasks_worker_queue ON tasks (id) WHERE provider = 'workers' AND lease_id IS NULL AND status IN ('pending', 'processing')`,
    );
    await q.query('CREATE INDEX idx_tasks_lease_expiry ON tasks (lease_expires_at) WHERE lease_id IS NOT NULL');
    await q.createTable(
      new Table({
        name: 'worker_tokens',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'label', type: 'varchar', length: '200', isNullable: true },
          { name: 'prefix', type: 'varchar', length: '16' },
          { name: 'token_hash', type: 'varchar', length: '64' },
          epoch('created_at'),
          epoch('revoked_at', true),
        ],
        indices: [new TableIndex({ name: 'uq_worker_tokens_hash', columnNames: ['token_hash'], isUnique: true })],
      }),
    );
    await q.createTable(
      new Table({
        name: 'workers',
        columns: [
          { name: 'id', type: 'varchar', length: '200', isPrimary: true },
          { name: 'token_id', type: 'varchar', length: '36' },
          { name: 'label', type: 'varchar', length: '200', isNullable: true },
          { name: 'models', type: 'text' },
          { name: 'kinds', type: 'text' },
          epoch('first_seen_at'),
          epoch('last_seen_at'),
        ],
        indices: [new TableIndex({ name: 'idx_workers_last_seen', columnNames: ['last_seen_at'] })],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('workers');
    await q.dropTable('worker_tokens');
    await q.query('DROP INDEX idx_tasks_lease_expiry');
    await q.query('DROP INDEX idx_tasks_worker_queue');
    for (const column of ['lease_count', 'lease_expires_at', 'lease_worker_id', 'lease_id', 'provider'])
      await q.query(`ALTER TABLE tasks DROP COLUMN ${column}`);
  }
}
