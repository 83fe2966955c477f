import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { DatabaseModule } from '../database/database.module.js';
import { ApiKeysService } from './api-keys.service.js';
import { ApiKeyGuard } from './auth.guard.js';
import { RateLimiter } from './rate-limiter.js';

@Module({
  imports: [DatabaseModule],
  providers: [ApiKeysService],
  exports: [ApiKeysService],
})
export class AuthModule {}

/** Only the HTTP app installs the guard; the worker role has no routes. */
@Module({
  imports: [AuthModule],
  providers: [RateLimiter, { provide: APP_GUARD, useClass: ApiKeyGuard }],
})
export class HttpAuthModule {}
