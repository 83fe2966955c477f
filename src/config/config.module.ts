import { Global, Module, DynamicModule } from '@nestjs/common';
import type { HeraldConfig } from './config.js';

/** Injection token for the typed, validated configuration. */
export const CONFIG = Symbol('HERALD_CONFIG');

@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: HeraldConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: CONFIG, useValue: config }], exports: [CONFIG] };
  }
}
