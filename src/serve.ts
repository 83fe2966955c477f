import { LogLevel as NestLogLevel, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module.js';
import { ApiKeysService } from './auth/api-keys.service.js';
import { WorkerTokensService } from './auth/worker-tokens.service.js';
import {
  closeUnusedConnectionsOnClose,
  everyAddress,
  httpAdapter,
  onEveryRequest,
  useJsonBodies,
  refuseOversizedExpectations,
  useRawUploads,
} from './common/http-server.js';
import type { HeraldConfig, LogLevel } from './config/config.js';
import { checkEncryptionKey } from './crypto/key-check.js';
import { serveDashboard } from './dashboard/static.js';
import { GenerationProcessor } from './generation/generation.processor.js';
import { applyHeapGrowing } from './observability/heap.js';
import { createRootLogger, PinoNestLogger, requestLogging } from './observability/logging.js';
import { shutdownMessage, type ShutdownReport } from './observability/shutdown-report.js';
import { startTracing, stopTracing } from './observability/tracing.js';
import { setupOpenApi } from './openapi.js';
import { assertRedisReachable } from './redis/redis-options.js';
import { DeliveryService } from './webhooks/delivery.service.js';
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

/**
 * Starts Herald in its configured role. Fails fast, with a message saying what to do, when Redis is unreachable or
 * the encryption key is not the one the database was written with.
 */
export async function startHerald(
  config: HeraldConfig,
  options: { printKey?: (key: string) => void } = {},
): Promise<RunningHerald> {
  await assertRedisReachable(config);
  await checkEncryptionKey(config);
  applyHeapGrowing(config.heapGrowingPercent);
  const logger = NEST_LEVELS[config.logLevel];
  const log = createRootLogger(config);
  await startTracing(config, (message) => log.warn(message));
  const module = AppModule.forRoot(config);
  const nestOptions = { logger, bufferLogs: logger !== false };
  const http =
    config.role === 'worker'
      ? undefined
      : await NestFactory.create<NestFastifyApplication>(module, httpAdapter(config.bodyLimitBytes), {
          ...nestOptions,
          bodyParser: false,
        });
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
    refuseOversizedExpectations(http, (method, url) =>
      isArtifactUpload(method, url) ? config.artifactMaxBytes : config.bodyLimitBytes,
    );
    closeUnusedConnectionsOnClose(http);
    setupOpenApi(http, config);
    serveDashboard(http);
    await http.listen(config.port, config.host ?? everyAddress());
    const address = http.getHttpServer().address();
    port = typeof address === 'object' && address ? address.port : config.port;
    new Logger('Herald').log(`Herald ${config.version} (${config.role}) listening on port ${port}`);
  } else {
    new Logger('Herald').log(`Herald ${config.version} worker started`);
  }
  const close = async () => {
    const started = performance.now();
    log.info('shutdown: taking no new work; letting requests on the wire finish and handing the rest back');
    // A connection with a request that never finishes arriving (a client that gave up but kept its socket)
    // would hold the server's close forever: after the grace, every connection still open is closed.
    const server = http?.getHttpServer();
    const cutOff = server ? setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs) : undefined;
    try {
      await app.close();
    } finally {
      clearTimeout(cutOff);
    }
    // The last spans (the attempts shutdown let finish) go to the collector before the process ends.
    await stopTracing().catch((err: Error) => log.warn(`tracing: spans not flushed at shutdown: ${err.message}`));
    // Only roles that process jobs hold generation jobs and webhook sends (asking Nest for an absent provider logs).
    const worker = config.role !== 'api';
    const webhooks = worker ? app.get(DeliveryService, { strict: false }).shutdown : undefined;
    const report: ShutdownReport = {
      generationHandedBack: worker ? app.get(GenerationProcessor, { strict: false }).handedBack : 0,
      webhooksFinished: webhooks?.finished ?? 0,
      webhooksGivenBack: webhooks?.givenBack ?? 0,
      durationMs: Math.round(performance.now() - started),
    };
    log.info(report, shutdownMessage(report));
  };
  return { close, port, bootstrapKey, app };
}
