import { Injectable } from '@nestjs/common';
import { ErrorCode } from '../common/errors.js';
import { ApiKeysService, type Principal } from './api-keys.service.js';
import { bearerToken } from './keys.js';
import { WorkerPrincipal, WorkerTokensService } from './worker-tokens.service.js';

/** What a route makes of the caller's `Authorization`: who it is, or why it is refused. */
export type Credential<P> =
  { principal: P } | { refused: ErrorCode.Unauthorized } | { refused: ErrorCode.Forbidden; message: string };

/**
 * The one rule for both kinds of credential: an API key admits its tenant on tenant routes (HTTP and the
 * WebSocket), a worker token its worker on /v1/worker/*; the other kind, valid but not for here, is refused as
 * forbidden, and anything else as unauthorized (each caller words that answer).
 */
@Injectable()
export class Credentials {
  constructor(
    private readonly keys: ApiKeysService,
    private readonly workerTokens: WorkerTokensService,
  ) {}

  async tenant(authorization: string | undefined): Promise<Credential<Principal>> {
    const principal = await this.keys.authenticate(authorization);
    if (principal) return { principal };
    if (await this.workerTokens.authenticate(bearerToken(authorization)))
      return {
        refused: ErrorCode.Forbidden,
        message: 'A worker token is valid only on /v1/worker/* routes; use an API key here.',
      };
    return { refused: ErrorCode.Unauthorized };
  }

  async worker(authorization: string | undefined): Promise<Credential<WorkerPrincipal>> {
    const principal = await this.workerTokens.authenticate(bearerToken(authorization));
    if (principal) return { principal };
    if (await this.keys.authenticate(authorization))
      return {
        refused: ErrorCode.Forbidden,
        message: 'An API key cannot be used on /v1/worker/* routes; use a worker token (herald keys create --worker).',
      };
    return { refused: ErrorCode.Unauthorized };
  }
}
