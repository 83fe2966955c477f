/** Stable, documented error codes. Each maps to exactly one HTTP status in `statusForCode`. */
export enum ErrorCode {
  ValidationFailed = 'validation_failed',
  MalformedJson = 'malformed_json',
  BadRequest = 'bad_request',
  HeadersTooLarge = 'headers_too_large',
  RequestTimeout = 'request_timeout',
  PayloadTooLarge = 'payload_too_large',
  UnsupportedMediaType = 'unsupported_media_type',
  Unauthorized = 'unauthorized',
  Forbidden = 'forbidden',
  NotFound = 'not_found',
  RouteNotFound = 'route_not_found',
  MethodNotAllowed = 'method_not_allowed',
  TaskNotFound = 'task_not_found',
  TaskNotCancellable = 'task_not_cancellable',
  TaskNotRetryable = 'task_not_retryable',
  IdempotencyConflict = 'idempotency_conflict',
  IdempotencyInProgress = 'idempotency_in_progress',
  WebhookUrlBlocked = 'webhook_url_blocked',
  DeliveryNotFound = 'delivery_not_found',
  EndpointNotFound = 'endpoint_not_found',
  EndpointDisabled = 'endpoint_disabled',
  LeaseNotFound = 'lease_not_found',
  LeaseExpired = 'lease_expired',
  RateLimited = 'rate_limited',
  StreamLimitReached = 'stream_limit_reached',
  PollTimeout = 'poll_timeout',
  ServiceUnavailable = 'service_unavailable',
  InternalError = 'internal_error',
}

export function statusForCode(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.ValidationFailed:
    case ErrorCode.WebhookUrlBlocked:
    case ErrorCode.IdempotencyConflict:
      return 422;
    case ErrorCode.MalformedJson:
    case ErrorCode.BadRequest:
      return 400;
    case ErrorCode.HeadersTooLarge:
      return 431;
    case ErrorCode.PayloadTooLarge:
      return 413;
    case ErrorCode.UnsupportedMediaType:
      return 415;
    case ErrorCode.Unauthorized:
      return 401;
    case ErrorCode.Forbidden:
      return 403;
    case ErrorCode.NotFound:
    case ErrorCode.RouteNotFound:
    case ErrorCode.TaskNotFound:
    case ErrorCode.DeliveryNotFound:
    case ErrorCode.EndpointNotFound:
    case ErrorCode.LeaseNotFound:
      return 404;
    case ErrorCode.LeaseExpired:
      return 410;
    case ErrorCode.MethodNotAllowed:
      return 405;
    case ErrorCode.TaskNotCancellable:
    case ErrorCode.TaskNotRetryable:
    case ErrorCode.IdempotencyInProgress:
    case ErrorCode.EndpointDisabled:
      return 409;
    case ErrorCode.RateLimited:
    case ErrorCode.StreamLimitReached:
      return 429;
    case ErrorCode.PollTimeout:
    case ErrorCode.RequestTimeout:
      return 408;
    case ErrorCode.ServiceUnavailable:
      return 503;
    case ErrorCode.InternalError:
      return 500;
    default: {
      const unmapped: never = code;
      throw new Error(`unmapped error code ${String(unmapped)}`);
    }
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function titleForStatus(status: number): string {
  return TITLES[status] ?? 'Error';
}

export interface FieldError {
  field: string;
  message: string;
}

/** Thrown by services for any failure a client should see; the global filter turns it into problem+json. */
export class DomainException extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail);
    this.name = 'DomainException';
  }

  get status(): number {
    return statusForCode(this.code);
  }
}

export const taskNotFound = (id: string) => new DomainException(ErrorCode.TaskNotFound, `No task with id ${id}.`);

/** The RFC 9457 problem+json every error leaves as (ProblemFilter, and answers written before Nest sees a request). */
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
