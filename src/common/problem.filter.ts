import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { DomainException, ErrorCode, problemBody } from './errors.js';
import { pathOf } from './http-server.js';

function fromHttpException(err: HttpException): DomainException {
  const status = err.getStatus();
  const response = err.getResponse();
  const message =
    typeof response === 'string'
      ? response
      : typeof (response as { message?: unknown }).message === 'string'
        ? (response as { message: string }).message
        : err.message;
  switch (status) {
    case 404:
      return new DomainException(ErrorCode.RouteNotFound, message);
    case 405:
      return new DomainException(ErrorCode.MethodNotAllowed, message);
    case 413:
      return new DomainException(ErrorCode.PayloadTooLarge, 'The request body is larger than the server accepts.');
    case 415:
      return new DomainException(ErrorCode.UnsupportedMediaType, message);
    case 401:
      return new DomainException(ErrorCode.Unauthorized, message);
    case 403:
      return new DomainException(ErrorCode.Forbidden, message);
    case 429:
      return new DomainException(ErrorCode.RateLimited, message);
    case 503:
      return new DomainException(ErrorCode.ServiceUnavailable, message);
    default:
      return status >= 400 && status < 500
        ? new DomainException(ErrorCode.ValidationFailed, message)
        : new DomainException(ErrorCode.InternalError, 'An unexpected error occurred.');
  }
}

export function toDomainException(exception: unknown): DomainException | undefined {
  if (exception instanceof DomainException) return exception;
  // Fastify's own errors (body too large, unsupported media type, …) reach here as HttpExceptions of their status.
  if (exception instanceof HttpException) return fromHttpException(exception);
  return undefined;
}

/** The single exception filter: every error leaves as RFC 9457 problem+json with a stable `code`. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<FastifyRequest>();
    const res = ctx.getResponse<FastifyReply>();
    const id: unknown = (req.raw as { id?: unknown }).id; // set by requestLogging
    const requestId = typeof id === 'string' ? id : undefined;
    let ex = toDomainException(exception);
    // A client that hung up mid-body ("aborted"): nobody is left to answer, and it is not Herald's fault.
    if (!ex && req.raw.destroyed && (exception as { code?: unknown })?.code === 'ECONNRESET') return;
    let errorId: string | undefined;
    if (!ex || ex.code === ErrorCode.InternalError) {
      errorId = randomUUID();
      this.logger.error(
        `error_id=${errorId} request_id=${requestId} ${req.method} ${pathOf(req.url)}: ${(exception as Error)?.stack ?? String(exception)}`,
      );
      ex = new DomainException(ErrorCode.InternalError, `An unexpected error occurred (error id ${errorId}).`);
    }
    if (res.sent || res.raw.headersSent) {
      res.raw.end();
      return;
    }
    void res
      .status(ex.status)
      .headers(ex.headers ?? {})
      .type('application/problem+json')
      .send(JSON.stringify(problemBody(ex, req.originalUrl ?? req.url, errorId, requestId)));
  }
}
