import { Module } from '@nestjs/common';
import { IdempotencyService } from './idempotency.service.js';
import { IdempotentReplies } from './idempotent-replies.js';

/** Idempotency-Key replays for creating POSTs; imported by each module whose routes take the header. */
@Module({ providers: [IdempotencyService, IdempotentReplies], exports: [IdempotentReplies] })
export class IdempotencyModule {}
