import { describe, expect, it } from 'vitest';
import { DomainException, ErrorCode } from './errors.js';
import { parseJsonBody, pathOf } from './http-server.js';

const code = (body: string) => {
  try {
    parseJsonBody(Buffer.from(body));
    return undefined;
  } catch (err) {
    return (err as DomainException).code;
  }
};

describe('JSON request bodies', () => {
  it('reads objects and arrays (validation decides what they may hold)', () => {
    expect(parseJsonBody(Buffer.from(' {"model":"m","prompt":"p"}'))).toEqual({ model: 'm', prompt: 'p' });
    expect(parseJsonBody(Buffer.from('[1,2]'))).toEqual([1, 2]);
  });

  it('reads an empty body as {}, as clients sending a JSON content type without a body expect', () => {
    expect(parseJsonBody(Buffer.from(''))).toEqual({});
    expect(parseJsonBody(Buffer.from(' \n'))).toEqual({});
  });

  it('answers text that is not JSON, and bare values, with malformed_json', () => {
    expect(code('{"model":')).toBe(ErrorCode.MalformedJson);
    expect(code('"x"')).toBe(ErrorCode.MalformedJson);
    expect(code('null')).toBe(ErrorCode.MalformedJson);
    expect(code('12')).toBe(ErrorCode.MalformedJson);
    expect(code('\u0000\u0001')).toBe(ErrorCode.MalformedJson);
  });
});

describe('pathOf', () => {
  it('drops the query string', () => {
    expect(pathOf('/dashboard?x=1')).toBe('/dashboard');
    expect(pathOf('/v1/tasks')).toBe('/v1/tasks');
  });
});
