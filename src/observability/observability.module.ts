import { Global, Module } from '@nestjs/common';
import { Metrics } from './metrics.js';

/** Prometheus metrics, one registry per process. Logging is wired in serve.ts (see logging.ts). */
@Global()
@Module({ providers: [Metrics], exports: [Metrics] })
export class ObservabilityModule {}
