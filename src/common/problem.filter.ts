import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { randomUUID } from 'node:crypto';
import { DomainException, ErrorCode, FieldError, statusForCode, titleForStatus } from './errors.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: string;
  errors?: FieldError[];
  error_id?: string;
  request_id?: string;
}

/** Body-parser and other Express-level errors carry `type`; map them to our codes. */
function fromExpressError(err: { type?: string; status?: number; statusCode?: number; message?: string }): DomainException | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return new DomainException(ErrorCode.MalformedJson, 'The request body is not valid JSON.');
    case 'entity.too.large':
      return new DomainException(ErrorCode.PayloadTooLarge, 'The request body is larger than the server accepts.');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new DomainException(ErrorCode.UnsupportedMediaType, err.message ?? 'Unsupported content encoding.');
    case 'request.aborted':
    case 'request.size.invalid':
    case 'stream.encoding.set':
      return new DomainException(ErrorCode.MalformedJson, err.message ?? 'The request body could not be read.');
    default:
      return undefined;
  }
}

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
  if (exception instanceof HttpException) {
    const cause = (exception as { cause?: unknown }).cause;
    const fromCause = cause && typeof cause === 'object' ? fromExpressError(cause as object) : undefined;
    return fromCause ?? fromHttpException(exception);
  }
  if (exception && typeof exception === 'object') return fromExpressError(exception as object);
  return undefined;
}

export function problemBody(ex: DomainException, instance: string, errorId?: string, requestId?: string): Problem {
  const status = statusForCode(ex.code);
  return {
    type: `urn:herald:problem:${ex.code}`,
    title: titleForStatus(status),
    status,
    detail: ex.detail,
    instance,
    code: ex.code,
    ...(ex.errors?.length ? { errors: ex.errors } : {}),
    ...(errorId ? { error_id: errorId } : {}),
    ...(requestId ? { request_id: requestId } : {}),
  };
}

/** The single exception filter: every error leaves as RFC 9457 problem+json with a stable `code`. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const id: unknown = (req as { id?: unknown }).id; // set by requestLogging
    const requestId = typeof id === 'string' ? id : undefined;
    let ex = toDomainException(exception);
    let errorId: string | undefined;
    if (!ex || ex.code === ErrorCode.InternalError) {
      errorId = randomUUID();
      this.logger.error(`error_id=${errorId} request_id=${requestId} ${req.method} ${req.path}: ${(exception as Error)?.stack ?? String(exception)}`);
      ex = new DomainException(ErrorCode.InternalError, `An unexpected error occurred (error id ${errorId}).`);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [name, value] of Object.entries(ex.headers ?? {})) res.setHeader(name, value);
    res
      .status(ex.status)
      .type('application/problem+json')
      .send(JSON.stringify(problemBody(ex, req.originalUrl ?? req.url, errorId, requestId)));
  }
}
