import { Global, Module } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { loadOrCreateKey, SecretBox } from './secret-box.js';

@Global()
@Module({
  providers: [
    {
      provide: SecretBox,
      inject: [CONFIG],
      useFactory: (config: HeraldConfig) => new SecretBox(loadOrCreateKey(config.encryptionKey, config.dataDir)),
    },
  ],
  exports: [SecretBox],
})
export class CryptoModule {}
