import { applyDecorators, CanActivate, createParamDecorator, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { ApiSecurity } from '@nestjs/swagger';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { DomainException, ErrorCode } from '../common/errors.js';
import { ApiKeysService, Principal } from './api-keys.service.js';
import { RateLimiter } from './rate-limiter.js';

const IS_PUBLIC = 'herald:public';
/**
 * Marks a route or controller as reachable without an API key (health, artifacts, docs). The empty security
 * requirement tells the OpenAPI document too (documentSharedProblems then leaves out the guard's 401 and 429).
 */
export const Public = () => applyDecorators(SetMetadata(IS_PUBLIC, true), ApiSecurity({}));

type AuthedRequest = FastifyRequest & { principal?: Principal };

/** Every route needs `Authorization: Bearer <key>` unless marked @Public(). */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly keys: ApiKeysService,
    private readonly limiter: RateLimiter,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()])) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const principal = await this.keys.authenticate(req.headers.authorization);
    if (!principal) {
      throw new DomainException(ErrorCode.Unauthorized, 'A valid API key is required: send "Authorization: Bearer <key>".', undefined, {
        'WWW-Authenticate': 'Bearer realm="herald"',
      });
    }
    const rate = await this.limiter.check(principal.keyId);
    if (!rate.allowed) {
      throw new DomainException(ErrorCode.RateLimited, `Too many requests for this API key (RATE_LIMIT_PER_SECOND); retry after ${rate.retryAfterSeconds} s.`, undefined, {
        'Retry-After': String(rate.retryAfterSeconds),
      });
    }
    req.principal = principal;
    return true;
  }
}

/** The tenant of the authenticated API key. */
export const TenantId = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const principal = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (!principal) throw new DomainException(ErrorCode.Unauthorized, 'A valid API key is required.');
  return principal.tenantId;
});
