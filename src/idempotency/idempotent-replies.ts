import { Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pathOf } from '../common/http-server.js';
import { Reply, send } from '../common/reply.js';
import { IdempotencyService, requestFingerprint } from './idempotency.service.js';

/** Runs a creating POST under its Idempotency-Key (if any) and sends the reply, first-time or replayed. */
@Injectable()
export class IdempotentReplies {
  constructor(private readonly idempotency: IdempotencyService) {}

  async respond(req: FastifyRequest, res: FastifyReply, tenantId: string, work: () => Promise<Reply>): Promise<void> {
    const header = req.headers['idempotency-key'];
    const key = Array.isArray(header) ? header[0] : header;
    // The fingerprint (a hash of the body) only matters under a key: most creates carry none.
    const fingerprint = key === undefined ? '' : requestFingerprint(req.method, pathOf(req.url), req.body);
    send(res, await this.idempotency.run(tenantId, key, fingerprint, work));
  }
}
