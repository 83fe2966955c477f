import { DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { dataSourceOptions, openDatabase } from './data-source.js';
import { UnitOfWork } from './unit-of-work.js';

/** The data source and the unit of work, for every module. `entities` comes from the composition root. */
@Global()
@Module({})
export class DatabaseModule {
  static forRoot(entities: NonNullable<DataSourceOptions['entities']>): DynamicModule {
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRootAsync({
          inject: [CONFIG],
          useFactory: (config: HeraldConfig) => dataSourceOptions(config, entities),
          // Migrations run before anything else touches the database (under a lock on PostgreSQL).
          dataSourceFactory: async (options) => openDatabase(options!, { migrate: true }),
        }),
      ],
      providers: [UnitOfWork],
      exports: [UnitOfWork],
    };
  }
}
