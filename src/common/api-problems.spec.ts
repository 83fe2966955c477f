import type { OpenAPIObject } from '@nestjs/swagger';
import { describe, expect, it } from 'vitest';
import { documentSharedProblems, problemResponse, problemsByStatus } from './api-problems.js';
import { ErrorCode } from './errors.js';

const doc = (paths: OpenAPIObject['paths']): OpenAPIObject => ({
  openapi: '3.0.0',
  info: { title: 't', version: '1' },
  paths,
});

describe('problemsByStatus', () => {
  it('groups codes under the status the problem filter answers them with', () => {
    expect([
      ...problemsByStatus([
        ErrorCode.TaskNotFound,
        ErrorCode.ValidationFailed,
        ErrorCode.WebhookUrlBlocked,
        ErrorCode.ValidationFailed,
      ]),
    ]).toEqual([
      [404, [ErrorCode.TaskNotFound]],
      [422, [ErrorCode.ValidationFailed, ErrorCode.WebhookUrlBlocked]],
    ]);
  });
});

describe('problemResponse', () => {
  it('names each code in the description and refers to the one Problem schema', () => {
    const response = problemResponse([ErrorCode.TaskNotFound], 'Not Found.');
    expect(response.description).toMatch(/^Not Found\. `task_not_found`: /);
    expect(response.content).toEqual({
      'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
    });
  });
});

describe('documentSharedProblems', () => {
  it('adds the guard’s 401, 403 and 429 to an authenticated route, and the body reader’s 400, 413 and 415 where a body is read', () => {
    const d = doc({
      '/v1/x': {
        post: { responses: { '202': { description: 'ok' } } },
        get: { responses: { '200': { description: 'ok' } } },
      },
    });
    documentSharedProblems(d);
    expect(Object.keys(d.paths['/v1/x'].post!.responses).sort()).toEqual([
      '202',
      '400',
      '401',
      '403',
      '413',
      '415',
      '429',
      '4XX',
      '5XX',
    ]);
    expect(Object.keys(d.paths['/v1/x'].get!.responses).sort()).toEqual(['200', '401', '403', '429', '4XX', '5XX']);
    expect(d.paths['/v1/x'].post!.security).toBeUndefined();
  });

  it('gives a public route no 401 or 429 and an empty security list', () => {
    const d = doc({ '/health': { get: { security: [{}], responses: { '200': { description: 'ok' } } } } });
    documentSharedProblems(d);
    expect(Object.keys(d.paths['/health'].get!.responses).sort()).toEqual(['200', '4XX', '5XX']);
    expect(d.paths['/health'].get!.security).toEqual([]);
  });

  it('keeps a status the route documents itself', () => {
    const own = problemResponse([ErrorCode.Unauthorized], 'A worker key, not an API key.');
    const d = doc({ '/v1/x': { post: { responses: { '401': own } } } });
    documentSharedProblems(d);
    expect(d.paths['/v1/x'].post!.responses['401']).toBe(own);
  });
});
