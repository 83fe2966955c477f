import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { dataSourceOptions, openDatabase } from './data-source.js';
import { UnitOfWork } from './unit-of-work.js';

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [CONFIG],
      useFactory: (config: HeraldConfig) => dataSourceOptions(config),
      // Migrations run before anything else touches the database (under a lock on PostgreSQL).
      dataSourceFactory: async (options) => openDatabase(options!, { migrate: true }),
    }),
  ],
  providers: [UnitOfWork],
  exports: [UnitOfWork],
})
export class DatabaseModule {}
