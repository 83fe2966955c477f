import type { IncomingMessage, ServerResponse } from 'node:http';
import { networkInterfaces } from 'node:os';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DomainException, ErrorCode } from './errors.js';

/**
 * The HTTP server under Nest: Fastify. Nest on Express spent about twice the CPU per request on the create path
 * (Express swaps the prototypes of every request and response, and its router and body parser walk layers of
 * middleware); see docs/BENCHMARKS.md, finding 27.
 */
export function httpAdapter(bodyLimitBytes: number): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: bodyLimitBytes,
    // Routes answer with or without a trailing slash (/v1/tasks/ is /v1/tasks), as they did on Express.
    routerOptions: { ignoreTrailingSlash: true },
    // While closing, a request on a kept-alive connection is still answered by Herald (and told Connection: close),
    // not with Fastify's own 503 body, which is not problem+json.
    return503OnClosing: false,
  });
}

/** Herald's JSON body reader, with the limit; see parseJsonBody (Nest passes what it throws on to `done`). */
export function useJsonBodies(app: NestFastifyApplication, bodyLimitBytes: number): void {
  app.useBodyParser('application/json', { bodyLimit: bodyLimitBytes }, (_req, body, done) => done(null, parseJsonBody(body)));
}

/**
 * A JSON body as clients of the Express version saw it read: an empty body is `{}` (some clients send a JSON
 * content type on a POST without a body), only an object or an array is a body (anything else, or text that is not
 * JSON, is 400 malformed_json), and validation of the fields comes after.
 */
export function parseJsonBody(body: Buffer | string): unknown {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return {};
  if (first !== '{' && first !== '[') throw malformed();
  try {
    return JSON.parse(text);
  } catch {
    throw malformed();
  }
}

const malformed = () => new DomainException(ErrorCode.MalformedJson, 'The request body is not valid JSON.');

/** A request URL's path, without the query string (Fastify's requests have no `path`). */
export function pathOf(url: string): string {
  return url.split('?')[0];
}

/** Runs a Node-style middleware (req, res, next) on every request, before routing: `onRequest`. */
export function onEveryRequest(app: NestFastifyApplication, middleware: (req: IncomingMessage, res: ServerResponse, next: () => void) => void): void {
  app.getHttpAdapter().getInstance().addHook('onRequest', (req, reply, done) => middleware(req.raw, reply.raw, () => done()));
}

/**
 * Where to listen without HOST: Node's own default (every IPv6 and IPv4 address, or every IPv4 one on a host
 * without IPv6). Fastify's default would be localhost only, which a container's port mapping cannot reach.
 */
export function everyAddress(): string {
  return Object.values(networkInterfaces()).some((list) => list?.some((a) => a.family === 'IPv6')) ? '::' : '0.0.0.0';
}

/** The content type uploads are parsed as: a private name, so no parser but ours ever sees them. */
const RAW_UPLOAD_TYPE = 'application/x-herald-raw-upload';

type UploadRequest = IncomingMessage & { uploadContentType?: string };

/**
 * Request bodies that pass through unread for the routes `matches` picks (artifact uploads): the handler gets the
 * stream as its body and the sender's Content-Type from uploadContentType(). Neither the JSON parser nor the global
 * BODY_LIMIT_BYTES applies; the handler enforces its own limit while streaming.
 */
export function useRawUploads(app: NestFastifyApplication, matches: (method: string, url: string) => boolean): void {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onRequest', (req, _reply, done) => {
    if (matches(req.method, req.url)) {
      (req.raw as UploadRequest).uploadContentType = req.headers['content-type'];
      req.headers['content-type'] = RAW_UPLOAD_TYPE;
    }
    done();
  });
  // Sent by hand to any other route, the private type is refused like any type Herald does not read.
  fastify.addContentTypeParser(RAW_UPLOAD_TYPE, (req, payload, done) =>
    matches(req.method, req.url) ? done(null, payload) : done(new DomainException(ErrorCode.UnsupportedMediaType, `Content-Type ${RAW_UPLOAD_TYPE} is not accepted here.`), undefined),
  );
}

/** The Content-Type an upload was sent with (see useRawUploads). */
export function uploadContentType(req: IncomingMessage): string | undefined {
  return (req as UploadRequest).uploadContentType;
}
