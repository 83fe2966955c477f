import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * The worker token that holds a task's lease: heartbeat, upload, complete and fail answer only that token, so a
 * lease id seen by another worker (logs, a shared proxy) does not let it act on the task. NULL for leases taken
 * before this column, which any worker token may still present.
 */
export class LeaseToken1765600000000 implements MigrationInterface {
  name = 'LeaseToken1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'tasks',
      new TableColumn({ name: 'lease_token_id', type: 'varchar', length: '36', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('tasks', 'lease_token_id');
  }
}
