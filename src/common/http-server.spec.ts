import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { DomainException, ErrorCode } from './errors.js';
import {
  clientErrorResponse,
  drainRefusedBody,
  MAX_JSON_DEPTH,
  nestsDeeperThan,
  parseJsonBody,
  pathOf,
} from './http-server.js';

const code = (body: string) => {
  try {
    parseJsonBody(Buffer.from(body));
    return undefined;
  } catch (err) {
    return (err as DomainException).code;
  }
};

describe('JSON request bodies', () => {
  it('reads objects (validation decides what they may hold)', () => {
    expect(parseJsonBody(Buffer.from(' {"model":"m","prompt":"p","tags":[1,[2]]}'))).toEqual({
      model: 'm',
      prompt: 'p',
      tags: [1, [2]],
    });
  });

  it('answers a bare array with malformed_json, as it does any body that is not an object', () => {
    expect(code('[1,2]')).toBe(ErrorCode.MalformedJson);
    expect(code(' []')).toBe(ErrorCode.MalformedJson);
  });

  it(`answers nesting deeper than ${MAX_JSON_DEPTH} levels with malformed_json, before anything recurses into it`, () => {
    const nested = (depth: number) => '{"m":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);
    expect(parseJsonBody(nested(MAX_JSON_DEPTH))).toBeTypeOf('object');
    expect(code(nested(MAX_JSON_DEPTH + 1))).toBe(ErrorCode.MalformedJson);
    expect(code(`{"webhook_metadata":${'['.repeat(3_000)}${']'.repeat(3_000)}}`)).toBe(ErrorCode.MalformedJson);
    expect(code(`{"a":${'['.repeat(1_000_000)}`)).toBe(ErrorCode.MalformedJson);
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

describe('nestsDeeperThan', () => {
  it('counts objects and arrays opened inside one another, not brackets inside strings', () => {
    expect(nestsDeeperThan('{"a":[{"b":[]}]}', 4)).toBe(false);
    expect(nestsDeeperThan('{"a":[{"b":[[]]}]}', 4)).toBe(true);
    expect(nestsDeeperThan('{"a":"[[[[[{{{{{","b":[1],"c":{}}', 2)).toBe(false);
    expect(nestsDeeperThan('{"a":"\\"[[[[[","b":"\\\\"}', 1)).toBe(false);
    expect(nestsDeeperThan('{"a":[],"b":[],"c":[],"d":{}}', 2)).toBe(false);
  });
});

describe('clientErrorResponse', () => {
  const parse = (raw: string) => {
    const [head, body] = raw.split('\r\n\r\n');
    return {
      statusLine: head.split('\r\n')[0],
      headers: head.toLowerCase(),
      body: JSON.parse(body),
      length: Buffer.byteLength(body),
    };
  };

  it('answers headers over the limit with 431 problem+json and closes the connection', () => {
    const res = parse(
      clientErrorResponse({
        code: 'HPE_HEADER_OVERFLOW',
        rawPacket: Buffer.from('GET /v1/tasks?api_key=hk_x HTTP/1.1\r\nX-Big: aaaa'),
      }),
    );
    expect(res.statusLine).toBe('HTTP/1.1 431 Request Header Fields Too Large');
    expect(res.headers).toContain('content-type: application/problem+json');
    expect(res.headers).toContain('connection: close');
    expect(res.headers).toContain(`content-length: ${res.length}`);
    expect(res.body).toEqual({
      type: 'urn:herald:problem:headers_too_large',
      title: 'Request Header Fields Too Large',
      status: 431,
      detail: expect.any(String),
      instance: '/v1/tasks',
      code: 'headers_too_large',
    });
  });

  it('answers anything else the HTTP parser refuses with 400 problem+json, and a slow request with 408', () => {
    expect(
      parse(clientErrorResponse({ code: 'HPE_INVALID_METHOD', rawPacket: Buffer.from('\u0000\u0001 junk') })).body,
    ).toMatchObject({ status: 400, code: 'bad_request', instance: '/' });
    expect(parse(clientErrorResponse({ code: 'HPE_INVALID_HEADER_TOKEN' })).statusLine).toBe(
      'HTTP/1.1 400 Bad Request',
    );
    expect(parse(clientErrorResponse({ code: 'ERR_HTTP_REQUEST_TIMEOUT' })).body).toMatchObject({
      status: 408,
      code: 'request_timeout',
    });
  });
});

describe('drainRefusedBody', () => {
  async function exchange(maxBytes: number, send: (req: http.ClientRequest) => void) {
    let drained = -1;
    const server = http.createServer((req, res) => {
      void drainRefusedBody(req, maxBytes, 5_000).then(() => {
        drained = req.socket.bytesRead;
        res.writeHead(413, { connection: 'close' }).end('too large');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(
          { port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'POST', agent: false },
          (res) => resolve(res.statusCode!),
        );
        req.on('error', reject);
        send(req);
      });
      return { status, drained };
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  it('answers once the whole body has been read', async () => {
    const { status, drained } = await exchange(1_000_000, (req) => req.end(Buffer.alloc(300_000)));
    expect(status).toBe(413);
    expect(drained).toBeGreaterThanOrEqual(300_000);
  });

  it('answers a body that never ends once maxBytes of it have been read', async () => {
    const { status, drained } = await exchange(200_000, (req) => {
      const chunk = Buffer.alloc(16_384);
      const pump = () => {
        while (!req.destroyed && req.write(chunk));
        if (!req.destroyed) req.once('drain', pump);
      };
      pump();
    });
    expect(status).toBe(413);
    expect(drained).toBeGreaterThan(200_000);
  });
});

describe('pathOf', () => {
  it('drops the query string', () => {
    expect(pathOf('/dashboard?x=1')).toBe('/dashboard');
    expect(pathOf('/v1/tasks')).toBe('/v1/tasks');
  });
});
