import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DomainException, ErrorCode, problemBody, statusForCode } from './errors.js';

/**
 * The HTTP server under Nest: Fastify. Nest on Express spent about twice the CPU per request on the create path
 * (Express swaps the prototypes of every request and response, and its router and body parser walk layers of
 * middleware); see docs/BENCHMARKS.md, finding 27.
 */
export function httpAdapter(bodyLimitBytes: number): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: bodyLimitBytes,
    // Routes answer with or without a trailing slash (/v1/tasks/ is /v1/tasks), as they did on Express.
    // maxParamLength: a path segment longer than Fastify's 100 characters would be its own 414 JSON, not problem+json;
    // with room, an overlong name or id reaches the route and is refused there (422 / 404) like any other.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2_048 },
    // While closing, a request on a kept-alive connection is still answered by Herald (and told Connection: close),
    // not with Fastify's own 503 body, which is not problem+json.
    return503OnClosing: false,
    // Errors Node's HTTP parser meets before there is a request (headers too large, a broken request line) are
    // answered as problem+json too, not with Fastify's own JSON.
    clientErrorHandler: answerClientError,
  });
}

/** How many times BODY_LIMIT_BYTES of a refused body Herald still reads, and throws away, before it answers. */
export const REFUSED_BODY_READ_FACTOR = 8;
export const REFUSED_BODY_READ_MS = 10_000;

/**
 * Herald's JSON body reader, with the limit; see parseJsonBody (Nest passes what it throws on to `done`). A body
 * over the limit is answered 413 once the rest of it has been read and dropped (see drainRefusedBody).
 */
export function useJsonBodies(app: NestFastifyApplication, bodyLimitBytes: number): void {
  app.useBodyParser('application/json', { bodyLimit: bodyLimitBytes }, (_req, body, done) =>
    done(null, parseJsonBody(body)),
  );
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onSend', (request, reply, payload, done) => {
      if (reply.statusCode !== 413) return done(null, payload);
      void drainRefusedBody(request.raw, REFUSED_BODY_READ_FACTOR * bodyLimitBytes, REFUSED_BODY_READ_MS).then(() =>
        done(null, payload),
      );
    });
}

/**
 * Reads and drops the rest of a refused request body (a JSON body over the limit, an upload refused before it was
 * read). Node closes the connection after the answer, and closing a socket with the client's bytes still arriving
 * resets it, so the client, still sending, would see ECONNRESET or EPIPE instead of the answer. Past `maxBytes` or
 * `maxMs` it stops, so an endless body cannot hold the answer; it resolves with whether the body was read to its end.
 */
export function drainRefusedBody(body: Readable, maxBytes: number, maxMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if ((body as IncomingMessage).complete || body.readableEnded || body.destroyed) return resolve(true);
    let read = 0;
    const onData = (chunk: Buffer) => {
      read += chunk.length;
      if (read > maxBytes) finish();
    };
    const finish = () => {
      clearTimeout(timer);
      body.off('data', onData).off('end', finish).off('error', finish).off('close', finish);
      resolve(body.readableEnded);
    };
    const timer = setTimeout(finish, maxMs);
    body.on('data', onData).once('end', finish).once('error', finish).once('close', finish);
    body.resume();
  });
}

/**
 * How deep a request body may nest objects and arrays (the body itself is level 1). Deeper input made
 * class-transformer overflow the stack (a 500); no field Herald reads, nor any sensible metadata, comes near it.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * A JSON body as clients of the Express version saw it read: an empty body is `{}` (some clients send a JSON
 * content type on a POST without a body), only an object is a body (an array or a bare value, text that is not
 * JSON, or nesting deeper than MAX_JSON_DEPTH is 400 malformed_json), and validation of the fields comes after.
 */
export function parseJsonBody(body: Buffer | string): unknown {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  const first = /\S/.exec(text)?.[0];
  if (first === undefined) return {};
  if (first !== '{') throw new DomainException(ErrorCode.MalformedJson, 'The request body must be a JSON object.');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH))
    throw new DomainException(
      ErrorCode.MalformedJson,
      `The request body nests objects or arrays more than ${MAX_JSON_DEPTH} levels deep.`,
    );
  try {
    return JSON.parse(text);
  } catch {
    throw new DomainException(ErrorCode.MalformedJson, 'The request body is not valid JSON.');
  }
}

/**
 * Whether JSON text opens more than `max` objects or arrays inside one another, counted on the text before parsing
 * (brackets inside strings do not count), so neither the parser nor anything walking the value after it recurses
 * that deep. Text that is not JSON may count either way; the parser refuses it next.
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next character, a quote included
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** The request line's path (no query string) from the bytes a client sent, when the parser got that far. */
function requestPath(rawPacket: unknown): string {
  if (!Buffer.isBuffer(rawPacket)) return '/';
  const line = /^[A-Z]{1,16} (\/[^\s]{0,2048}) HTTP\//.exec(rawPacket.subarray(0, 2100).toString('latin1'));
  return line ? pathOf(line[1]) : '/';
}

/**
 * The HTTP answer to an error Node's parser met before there was a request to route: request headers over
 * Node's limit (431), a request timeout (408) or anything else it could not parse (400), as problem+json.
 */
export function clientErrorResponse(err: { code?: string; rawPacket?: unknown }): string {
  const [code, detail] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [ErrorCode.HeadersTooLarge, 'The request headers are larger than the server accepts.']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [ErrorCode.RequestTimeout, 'The request was not received in time.']
        : [ErrorCode.BadRequest, 'The request is not valid HTTP/1.1.'];
  const status = statusForCode(code);
  const body = JSON.stringify(problemBody(new DomainException(code, detail), requestPath(err.rawPacket)));
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

// How long a connection answered by answerClientError may stay open for the client to read the answer.
const CLIENT_ERROR_LINGER_MS = 2_000;

/**
 * Node's 'clientError': writes the problem and ends the connection after it. Ending (not destroying) lets the
 * answer arrive before the close; Node keeps feeding later bytes to the failed parser, which discards them, so a
 * client still sending gets no reset. A client that never closes is cut off after a moment.
 */
export function answerClientError(err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writableEnded) return; // the parser's later errors on the same connection
  // A broken body after a request began: its answer may be half written already, so only hang up.
  const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (socket.writable && !started) socket.end(clientErrorResponse(err));
  else socket.destroy();
  const timer = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** A request URL's path, without the query string (Fastify's requests have no `path`). */
export function pathOf(url: string): string {
  return url.split('?')[0];
}

/** Runs a Node-style middleware (req, res, next) on every request, before routing: `onRequest`. */
export function onEveryRequest(
  app: NestFastifyApplication,
  middleware: (req: IncomingMessage, res: ServerResponse, next: () => void) => void,
): void {
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('onRequest', (req, reply, done) => middleware(req.raw, reply.raw, () => done()));
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
    matches(req.method, req.url)
      ? done(null, payload)
      : done(
          new DomainException(ErrorCode.UnsupportedMediaType, `Content-Type ${RAW_UPLOAD_TYPE} is not accepted here.`),
          undefined,
        ),
  );
}

/**
 * A client that asks before sending its body (`Expect: 100-continue`, as curl does for large uploads) and declares
 * more than its route takes (`limitOf`) is answered 413 at once, instead of "100 Continue" and a body read and
 * dropped. Node sends "100 Continue" itself unless the server listens for 'checkContinue'; the others go on so.
 */
export function refuseOversizedExpectations(
  app: NestFastifyApplication,
  limitOf: (method: string, url: string) => number,
): void {
  const server = app.getHttpServer();
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const declared = Number(req.headers['content-length']);
    const limit = limitOf(req.method ?? 'GET', req.url ?? '/');
    if (!(Number.isFinite(declared) && declared > limit)) {
      res.writeContinue();
      return void server.emit('request', req, res);
    }
    const refused = new DomainException(
      ErrorCode.PayloadTooLarge,
      `The body declared (${declared} bytes) is larger than this route takes (${limit} bytes).`,
    );
    const body = JSON.stringify(problemBody(refused, pathOf(req.url ?? '/')));
    res.writeHead(413, {
      'Content-Type': 'application/problem+json',
      'Content-Length': Buffer.byteLength(body),
      Connection: 'close',
    });
    res.end(body);
  });
}

/**
 * On close, ends at once the connections that never carried a request. Node's server.close() closes idle
 * kept-alive connections, but counts one that was opened and not used yet as busy (clients such as undici open
 * spare connections ahead, e.g. after a worker aborted its long poll), so without this a stop waited for the
 * client to drop them, or for SHUTDOWN_GRACE_MS.
 */
export function closeUnusedConnectionsOnClose(app: NestFastifyApplication): void {
  const server = app.getHttpServer();
  const unused = new Set<Socket>();
  let closing = false;
  server.on('connection', (socket: Socket) => {
    if (closing) return void socket.destroy();
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  server.on('request', (req: IncomingMessage) => unused.delete(req.socket));
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('preClose', (done: () => void) => {
      closing = true;
      for (const socket of unused) socket.destroy();
      unused.clear();
      done();
    });
}

/** The Content-Type an upload was sent with (see useRawUploads). */
export function uploadContentType(req: IncomingMessage): string | undefined {
  return (req as UploadRequest).uploadContentType;
}
