import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeysService } from './api-keys.service.js';
import { ApiKeyGuard } from './auth.guard.js';
import { RateLimiter } from './rate-limiter.js';
import { Credentials } from './credentials.js';
import { WorkerTokensService } from './worker-tokens.service.js';

@Module({
  providers: [ApiKeysService, WorkerTokensService, Credentials],
  exports: [ApiKeysService, WorkerTokensService, Credentials],
})
export class AuthModule {}

/** Only the HTTP app installs the guard; the worker role has no routes. */
@Module({
  imports: [AuthModule],
  providers: [RateLimiter, { provide: APP_GUARD, useClass: ApiKeyGuard }],
})
export class HttpAuthModule {}
