import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * The W3C traceparent of the request that created a task, when tracing is on: generation steps and webhook attempts,
 * later and in other processes, join that trace through it. A column rather than params or metadata, which are the
 * caller's (handed to the provider, echoed in webhooks).
 */
export class TaskTraceParent1765400000000 implements MigrationInterface {
  name = 'TaskTraceParent1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'tasks',
      new TableColumn({ name: 'trace_parent', type: 'varchar', length: '55', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('tasks', 'trace_parent');
  }
}
