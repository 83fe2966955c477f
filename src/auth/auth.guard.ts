import {
  applyDecorators,
  CanActivate,
  createParamDecorator,
  ExecutionContext,
  Injectable,
  SetMetadata,
} from '@nestjs/common';
import { ApiSecurity } from '@nestjs/swagger';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { DomainException, ErrorCode } from '../common/errors.js';
import type { Principal } from './api-keys.service.js';
import { RateLimiter } from './rate-limiter.js';
import { Credentials } from './credentials.js';
import type { WorkerPrincipal } from './worker-tokens.service.js';

const IS_PUBLIC = 'herald:public';
/**
 * Marks a route or controller as reachable without an API key (health, artifacts, docs). The empty security
 * requirement tells the OpenAPI document too (documentSharedProblems then leaves out the guard's 401 and 429).
 */
export const Public = () => applyDecorators(SetMetadata(IS_PUBLIC, true), ApiSecurity({}));

const WORKER_ONLY = 'herald:worker-only';
/** Marks the worker protocol's routes: a worker token is needed there, and nowhere else is one accepted. */
export const WorkerOnly = () => SetMetadata(WORKER_ONLY, true);

type AuthedRequest = FastifyRequest & { principal?: Principal; worker?: WorkerPrincipal };

/**
 * Every route needs `Authorization: Bearer <key>` unless marked @Public(): an API key on tenant routes, a worker
 * token on @WorkerOnly() routes. The wrong kind of valid credential is 403, an unknown one 401; the second lookup
 * happens only on the failing path. Worker tokens are not rate limited: they belong to the operator's own machines.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly credentials: Credentials,
    private readonly limiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    if (this.reflector.getAllAndOverride<boolean>(WORKER_ONLY, targets)) return this.admitWorker(req);
    const credential = await this.credentials.tenant(req.headers.authorization);
    if ('refused' in credential) {
      if (credential.refused === ErrorCode.Forbidden)
        throw new DomainException(ErrorCode.Forbidden, credential.message);
      throw new DomainException(
        ErrorCode.Unauthorized,
        'A valid API key is required: send "Authorization: Bearer <key>".',
        undefined,
        {
          'WWW-Authenticate': 'Bearer realm="herald"',
        },
      );
    }
    const { principal } = credential;
    const rate = await this.limiter.check(principal.keyId);
    if (!rate.allowed) {
      throw new DomainException(
        ErrorCode.RateLimited,
        `Too many requests for this API key (RATE_LIMIT_PER_SECOND); retry after ${rate.retryAfterSeconds} s.`,
        undefined,
        {
          'Retry-After': String(rate.retryAfterSeconds),
        },
      );
    }
    req.principal = principal;
    return true;
  }

  private async admitWorker(req: AuthedRequest): Promise<boolean> {
    const credential = await this.credentials.worker(req.headers.authorization);
    if ('principal' in credential) {
      req.worker = credential.principal;
      return true;
    }
    if (credential.refused === ErrorCode.Forbidden) throw new DomainException(ErrorCode.Forbidden, credential.message);
    throw new DomainException(
      ErrorCode.Unauthorized,
      'A valid worker token is required: send "Authorization: Bearer <worker token>".',
      undefined,
      {
        'WWW-Authenticate': 'Bearer realm="herald-worker"',
      },
    );
  }
}

/** The worker token of a @WorkerOnly() route's request. */
export const WorkerAuth = createParamDecorator((_: unknown, ctx: ExecutionContext): WorkerPrincipal => {
  const worker = ctx.switchToHttp().getRequest<AuthedRequest>().worker;
  if (!worker) throw new DomainException(ErrorCode.Unauthorized, 'A valid worker token is required.');
  return worker;
});

/** The tenant of the authenticated API key. */
export const TenantId = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const principal = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!principal) throw new DomainException(ErrorCode.Unauthorized, 'A valid API key is required.');
  return principal.tenantId;
});
