import { applyDecorators } from '@nestjs/common';
import {
  ApiHeader,
  ApiResponse,
  getSchemaPath,
  type OpenAPIObject,
  type OperationObject,
  type ResponseObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { ErrorCode, statusForCode, titleForStatus } from './errors.js';
import type { Problem } from './errors.js';

/** The one schema every problem answer refers to: the body ProblemFilter writes (RFC 9457 plus `code`). */
export const PROBLEM_SCHEMA: SchemaObject & { properties: Record<keyof Problem, SchemaObject> } = {
  type: 'object',
  description: 'RFC 9457 problem details; `code` is stable and the one to branch on.',
  required: ['type', 'title', 'status', 'detail', 'instance', 'code'],
  properties: {
    type: { type: 'string', description: 'urn:herald:problem:<code>', example: 'urn:herald:problem:task_not_found' },
    title: { type: 'string', example: 'Not Found' },
    status: { type: 'integer', example: 404 },
    detail: { type: 'string', example: 'No task with id 01a2067a-85e7-772a-b5bb-a39c8118ce75.' },
    instance: {
      type: 'string',
      description: 'The request path',
      example: '/v1/tasks/01a2067a-85e7-772a-b5bb-a39c8118ce75',
    },
    code: { type: 'string', enum: Object.values(ErrorCode), example: 'task_not_found' },
    errors: {
      type: 'array',
      description: 'With validation_failed and webhook_url_blocked: each field at fault',
      items: {
        type: 'object',
        required: ['field', 'message'],
        properties: { field: { type: 'string', example: 'prompt' }, message: { type: 'string' } },
      },
    },
    error_id: { type: 'string', description: 'With internal_error: the id of the log line that has the cause' },
    request_id: { type: 'string', description: 'The X-Request-Id of the request' },
  },
};

/** What each code means to a client; a new code fails to compile until it is described here. */
const MEANING: Record<ErrorCode, string> = {
  [ErrorCode.ValidationFailed]: 'a field has a wrong type or range; `errors` names each one',
  [ErrorCode.BadRequest]: 'the request is not valid HTTP',
  [ErrorCode.HeadersTooLarge]: 'the request headers are over the server limit',
  [ErrorCode.RequestTimeout]: 'the request did not arrive in time',
  [ErrorCode.MalformedJson]: 'the body is not JSON, nests deeper than 32 levels, or is not a JSON object',
  [ErrorCode.PayloadTooLarge]: 'the body is over BODY_LIMIT_BYTES',
  [ErrorCode.UnsupportedMediaType]: 'the body is neither JSON nor text (form-encoded, multipart, …)',
  [ErrorCode.Unauthorized]: 'no API key, or not a valid one: send `Authorization: Bearer hk_…`',
  [ErrorCode.Forbidden]:
    'the credential is of the wrong kind for this route (a worker token on a tenant route, an API key on /v1/worker/*)',
  [ErrorCode.NotFound]: 'nothing by that name',
  [ErrorCode.RouteNotFound]: 'no such route',
  [ErrorCode.MethodNotAllowed]: 'the route does not take this method',
  [ErrorCode.TaskNotFound]: 'no task with this id for this API key’s tenant',
  [ErrorCode.TaskNotCancellable]: 'the task has already ended',
  [ErrorCode.TaskNotRetryable]: 'only a failed or timed-out task can be retried',
  [ErrorCode.IdempotencyConflict]: 'the Idempotency-Key was used before with a different request',
  [ErrorCode.IdempotencyInProgress]: 'a request with this Idempotency-Key is still running; retry after `Retry-After`',
  [ErrorCode.WebhookUrlBlocked]: 'the webhook URL resolves to a blocked address range (see WEBHOOK_ALLOWED_CIDRS)',
  [ErrorCode.DeliveryNotFound]: 'no delivery with this id for this tenant',
  [ErrorCode.EndpointNotFound]: 'no webhook endpoint with this id for this tenant',
  [ErrorCode.EndpointDisabled]: 'the endpoint is disabled; enable it first',
  [ErrorCode.RateLimited]: 'over RATE_LIMIT_PER_SECOND for this API key; retry after `Retry-After`',
  [ErrorCode.PollTimeout]: 'the task did not end within `timeout`; poll again',
  [ErrorCode.ServiceUnavailable]: 'Herald is shutting down or a dependency is not answering; retry',
  [ErrorCode.LeaseNotFound]: 'no lease with this id was ever issued',
  [ErrorCode.LeaseExpired]: 'the lease ended (expired, taken over, completed or its task ended); drop the job',
  [ErrorCode.StreamLimitReached]:
    'this API key has STREAM_MAX_CONNECTIONS_PER_KEY streams open (across all API processes); close one',
  [ErrorCode.InternalError]: 'an unexpected error; `error_id` finds its log line',
};

const problemContent = () => ({ 'application/problem+json': { schema: { $ref: getSchemaPath('Problem') } } });

/** One response object for problems of one status (or a range such as 4XX), naming each code and what it means. */
export function problemResponse(codes: ErrorCode[], lead?: string): ResponseObject {
  const lines = codes.map((c) => `\`${c}\`: ${MEANING[c]}.`);
  return { description: [lead, ...lines].filter(Boolean).join(' '), content: problemContent() };
}

/** Groups codes by the status ProblemFilter answers them with (statusForCode, the one mapping). */
export function problemsByStatus(codes: ErrorCode[]): Map<number, ErrorCode[]> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes))
    byStatus.set(statusForCode(code), [...(byStatus.get(statusForCode(code)) ?? []), code]);
  return byStatus;
}

/**
 * Documents the problems a route answers besides the ones every route shares (see documentSharedProblems), as
 * application/problem+json of the Problem schema, e.g. `@ApiProblems(ErrorCode.TaskNotFound, ...IDEMPOTENCY_PROBLEMS)`
 * beside `@ApiOperation({ operationId, summary })` and the success `@ApiResponse`. One call per route: two calls
 * naming codes of the same status would keep only the last one's. A route that documents a shared status itself
 * (a worker route's own 401) keeps its own.
 */
export function ApiProblems(...codes: ErrorCode[]) {
  return applyDecorators(
    ...[...problemsByStatus(codes)].map(([status, group]) =>
      ApiResponse({
        status,
        description: problemResponse(group, `${titleForStatus(status)}.`).description,
        content: problemContent(),
      }),
    ),
  );
}

/** The problems the Idempotency-Key handling adds to a route that honours the header. */
export const IDEMPOTENCY_PROBLEMS = [
  ErrorCode.ValidationFailed,
  ErrorCode.IdempotencyConflict,
  ErrorCode.IdempotencyInProgress,
];

/** A route whose repeat with the same Idempotency-Key replays the first answer. */
export const ApiIdempotent = () =>
  ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Repeat a request with the same key (1–255 characters, kept 24 h) to get the first answer again instead of a second effect.',
  });

/**
 * Problems no controller raises itself: the credential guard's (403: a worker token on a tenant route or the
 * reverse), the body reader's, and every route's fallbacks.
 */
const GUARD = [ErrorCode.Unauthorized, ErrorCode.Forbidden, ErrorCode.RateLimited];
const BODY_READER = [ErrorCode.MalformedJson, ErrorCode.PayloadTooLarge, ErrorCode.UnsupportedMediaType];
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
const WITH_BODY = new Set<string>(['put', 'post', 'delete', 'patch']);

/**
 * Adds to every operation the problems it shares with all others, so controllers declare only their own:
 * 401/429 unless the route is public (its `security` is an empty requirement, from @Public()), 400/413/415 where
 * Fastify reads a body (a DELETE's too), and 4XX/5XX for the rest (431 request headers too large, 500 internal_error).
 * Public routes get `security: []`, which OpenAPI reads as no authentication.
 */
export function documentSharedProblems(document: OpenAPIObject): void {
  for (const item of Object.values(document.paths)) {
    for (const method of METHODS) {
      const operation: OperationObject | undefined = item[method];
      if (!operation) continue;
      const isPublic = operation.security?.some((requirement) => Object.keys(requirement).length === 0) ?? false;
      if (isPublic) operation.security = [];
      const shared = [...(isPublic ? [] : GUARD), ...(WITH_BODY.has(method) ? BODY_READER : [])];
      const responses = operation.responses;
      for (const [status, group] of problemsByStatus(shared))
        responses[status] ??= problemResponse(group, `${titleForStatus(status)}.`);
      responses['4XX'] ??= problemResponse(
        [ErrorCode.BadRequest, ErrorCode.HeadersTooLarge, ErrorCode.RequestTimeout],
        'Any other client error, answered by the HTTP server before routing:',
      );
      responses['5XX'] ??= problemResponse([ErrorCode.InternalError], 'Server error.');
    }
  }
}
