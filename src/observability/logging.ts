import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import type { HeraldConfig } from '../config/config.js';
import { traceFields } from './tracing.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;
// Probes and scrapes would drown the request log.
const QUIET_PATHS = new Set(['/health/live', '/metrics']);

/** Paths pino must never print: credentials and anything a caller might put in webhook headers. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
];

/** The process's one pino logger: JSON lines on stdout (or `stream`, for tests). */
export function createRootLogger(
  config: Pick<HeraldConfig, 'logLevel' | 'role' | 'tracing'>,
  stream?: DestinationStream,
): Logger {
  // With tracing on, a line written inside a span carries its trace_id and span_id; without, no mixin runs at all.
  const options = {
    level: config.logLevel,
    base: { service: 'herald', role: config.role },
    redact: { paths: REDACTED_PATHS, censor: '***' },
    ...(config.tracing ? { mixin: traceFields } : {}),
  };
  return stream ? pino(options, stream) : pino(options);
}

// Nest's start-up chatter (a line per module and per route) is for debugging the wiring, not for operators.
const NEST_WIRING_CONTEXTS = new Set([
  'InstanceLoader',
  'RoutesResolver',
  'RouterExplorer',
  'NestFactory',
  'NestApplication',
]);

/**
 * Nest's Logger calls, written through pino. Nest passes the context last and, for errors, a stack before it.
 * Request ids are not attached from async context: that needs AsyncLocalStorage, whose promise hooks cost every
 * promise in the process (measured: a tenth of webhook throughput, plus a fifth of creates for per-request child
 * loggers); the request log line and problem bodies carry the id instead.
 */
export class PinoNestLogger implements LoggerService {
  constructor(private readonly pino: Logger) {}

  log(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    this.write(typeof context === 'string' && NEST_WIRING_CONTEXTS.has(context) ? 'debug' : 'info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  private write(level: Level, message: unknown, rest: unknown[]): void {
    if (!this.pino.isLevelEnabled(level)) return;
    const fields: Record<string, unknown> = {};
    const params = [...rest];
    if (params.length && typeof params[params.length - 1] === 'string') fields.context = params.pop();
    if (level === 'error' && typeof params[0] === 'string') fields.stack = params[0];
    if (message instanceof Error) {
      fields.err = message;
      this.pino[level](fields, message.message);
    } else if (typeof message === 'object' && message !== null) {
      this.pino[level]({ ...fields, ...message });
    } else {
      this.pino[level](fields, String(message));
    }
  }
}

type RequestWithId = IncomingMessage & { id?: string };

// Query parameters whose value may be a credential: a key sent as ?api_key= is refused, but must not reach the log.
const CREDENTIAL_PARAM = /key|token|secret|passw|pwd|signature|^sig$|auth|credential|session|cookie/i;
const HERALD_SECRET = /^\s*(hk_|whsec_)/i;

/**
 * A request URL as it may be logged: the value of every query parameter whose name looks like a credential
 * (api_key, token, access_token, secret, password, signature, auth, …, any case, percent-encoded or not) and of
 * any that holds a Herald API key or signing secret is replaced by ***.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq < 0) return HERALD_SECRET.test(decoded(part)) ? '***' : part;
      const name = part.slice(0, eq);
      return CREDENTIAL_PARAM.test(decoded(name)) || HERALD_SECRET.test(decoded(part.slice(eq + 1)))
        ? `${name}=***`
        : part;
    });
  return `${url.slice(0, q)}?${query.join('&')}`;
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * Gives every request an id (the caller's X-Request-Id when it is sane, so logs line up across services), echoes it
 * in the response, and logs one line when the response is done: 5xx at error, the rest at info.
 */
export function requestLogging(log: Logger) {
  return (req: RequestWithId, res: ServerResponse, next: () => void): void => {
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    req.id = id;
    res.setHeader('X-Request-Id', id);
    if (log.isLevelEnabled('error') && !QUIET_PATHS.has(req.url ?? '')) {
      const started = performance.now();
      res.once('close', () => {
        const level: Level = res.statusCode >= 500 ? 'error' : 'info';
        if (!log.isLevelEnabled(level)) return;
        log[level](
          {
            req: {
              id,
              method: req.method,
              url: redactUrl(req.url ?? ''),
              headers: { 'user-agent': req.headers['user-agent'], 'idempotency-key': req.headers['idempotency-key'] },
            },
            res: { statusCode: res.statusCode },
            responseTime: Math.round(performance.now() - started),
          },
          res.writableFinished ? 'request completed' : 'request aborted',
        );
      });
    }
    next();
  };
}
