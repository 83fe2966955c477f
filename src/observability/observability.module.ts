import { Global, Module, DynamicModule } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoggerModule } from 'nestjs-pino';
import type { HeraldConfig } from '../config/config.js';
import { Metrics } from './metrics.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Paths pino must never print: credentials and anything a caller might put in webhook headers. */
export const REDACTED_PATHS = ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'res.headers["set-cookie"]'];

/** Structured JSON logs (pino) with a request id per request, and Prometheus metrics. */
@Global()
@Module({})
export class ObservabilityModule {
  static forRoot(config: HeraldConfig): DynamicModule {
    return {
      module: ObservabilityModule,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            level: config.logLevel,
            base: { service: 'herald', role: config.role },
            redact: { paths: REDACTED_PATHS, censor: '***' },
            // Reuse the caller's X-Request-Id when it is sane, so logs line up across services.
            genReqId: (req: IncomingMessage, res: ServerResponse) => {
              const given = req.headers['x-request-id'];
              const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
              res.setHeader('X-Request-Id', id);
              return id;
            },
            autoLogging: { ignore: (req: IncomingMessage) => req.url === '/health/live' || req.url === '/metrics' },
            serializers: {
              req: (req: { id: string; method: string; url: string; headers: Record<string, unknown> }) => ({
                id: req.id,
                method: req.method,
                url: req.url,
                headers: { 'user-agent': req.headers['user-agent'], authorization: req.headers.authorization, 'idempotency-key': req.headers['idempotency-key'] },
              }),
            },
          },
        }),
      ],
      providers: [Metrics],
      exports: [Metrics],
    };
  }
}
