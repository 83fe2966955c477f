import { LogLevel as NestLogLevel, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module.js';
import { ApiKeysService } from './auth/api-keys.service.js';
import { WorkerTokensService } from './auth/worker-tokens.service.js';
import { everyAddress, httpAdapter, onEveryRequest, useJsonBodies, useRawUploads } from './common/http-server.js';
import type { HeraldConfig, LogLevel } from './config/config.js';
import { serveDashboard } from './dashboard/static.js';
import { applyHeapGrowing } from './observability/heap.js';
import { createRootLogger, PinoNestLogger, requestLogging } from './observability/logging.js';
import { setupOpenApi } from './openapi.js';
import { assertRedisReachable } from './redis/redis-options.js';
import { isArtifactUpload } from './workers/worker-protocol.controller.js';

const NEST_LEVELS: Record<LogLevel, NestLogLevel[] | false> = {
  silent: false,
  fatal: ['fatal'],
  error: ['fatal', 'error'],
  warn: ['fatal', 'error', 'warn'],
  info: ['fatal', 'error', 'warn', 'log'],
  debug: ['fatal', 'error', 'warn', 'log', 'debug'],
  trace: ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'],
};

export interface RunningHerald {
  close(): Promise<void>;
  /** The port actually bound (differs from config when PORT=0), or undefined for the worker role. */
  port?: number;
  /** Set when this start created the first API key (printed once). */
  bootstrapKey?: string;
  app: { get<T>(typeOrToken: (abstract new (...args: never[]) => T) | string): T };
}

/** Starts Herald in its configured role. Fails fast, with a message saying what to do, when Redis is unreachable. */
export async function startHerald(config: HeraldConfig, options: { printKey?: (key: string) => void } = {}): Promise<RunningHerald> {
  await assertRedisReachable(config.redisUrl);
  applyHeapGrowing(config.heapGrowingPercent);
  const logger = NEST_LEVELS[config.logLevel];
  const log = createRootLogger(config);
  const module = AppModule.forRoot(config);
  const nestOptions = { logger, bufferLogs: logger !== false };
  const http = config.role === 'worker' ? undefined : await NestFactory.create<NestFastifyApplication>(module, httpAdapter(config.bodyLimitBytes), { ...nestOptions, bodyParser: false });
  const app = http ?? (await NestFactory.createApplicationContext(module, nestOptions));
  if (logger !== false) app.useLogger(new PinoNestLogger(log));
  app.enableShutdownHooks();

  let bootstrapKey: string | undefined;
  const created = await app.get(ApiKeysService).bootstrap(config.bootstrapApiKey);
  if (created && !config.bootstrapApiKey) {
    bootstrapKey = created.key;
    options.printKey?.(created.key);
  }
  await app.get(WorkerTokensService).bootstrap(config.workers.bootstrapToken);

  let port: number | undefined;
  if (http) {
    onEveryRequest(http, requestLogging(log));
    useJsonBodies(http, config.bodyLimitBytes);
    useRawUploads(http, isArtifactUpload);
    setupOpenApi(http, config);
    serveDashboard(http);
    await http.listen(config.port, config.host ?? everyAddress());
    const address = http.getHttpServer().address();
    port = typeof address === 'object' && address ? address.port : config.port;
    new Logger('Herald').log(`Herald ${config.version} (${config.role}) listening on port ${port}`);
  } else {
    new Logger('Herald').log(`Herald ${config.version} worker started`);
  }
  return { close: () => app.close(), port, bootstrapKey, app };
}
