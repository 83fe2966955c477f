import { Module } from '@nestjs/common';
import { Metrics } from './metrics.js';

/** Prometheus metrics, one registry per process. Logging is wired in serve.ts (see logging.ts). */
@Module({ providers: [Metrics], exports: [Metrics] })
export class ObservabilityModule {}
