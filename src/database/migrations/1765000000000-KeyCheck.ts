import { MigrationInterface, QueryRunner, Table } from 'typeorm';

/**
 * Facts about the database itself, by name. The first is the encryption key's check value: a start with another
 * ENCRYPTION_KEY is refused instead of sealing new secrets with it and failing to open every stored one.
 */
export class KeyCheck1765000000000 implements MigrationInterface {
  name = 'KeyCheck1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'herald_meta',
        columns: [
          { name: 'name', type: 'varchar', length: '64', isPrimary: true },
          { name: 'value', type: 'text' },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('herald_meta');
  }
}
