import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { ObservabilityModule } from '../observability/observability.module.js';
import { GenerationEngine } from '../tasks/generation-engine.js';
import { TasksCoreModule } from '../tasks/tasks-core.module.js';
import { ArtifactStore } from './artifact-store.js';
import { ArtifactsController } from './artifacts.controller.js';
import { GenerationProcessor } from './generation.processor.js';
import { GENERATION_QUEUE, GenerationQueue } from './generation.queue.js';
import { GenerationRunner } from './generation.runner.js';
import { GenerationSweeper } from './generation.sweeper.js';
import { GENERATION_PROVIDER, GenerationProvider } from './provider.js';
import { SimulatorProvider } from './simulator.provider.js';

/** The generation queue, the provider and the artifact store, for every role; the task API's GenerationEngine. */
@Module({
  imports: [BullModule.registerQueue({ name: GENERATION_QUEUE })],
  providers: [
    GenerationQueue,
    ArtifactStore,
    {
      provide: GENERATION_PROVIDER,
      inject: [CONFIG],
      useFactory: (config: HeraldConfig) => new SimulatorProvider(config.simulatorDurationMs, config.simulatorSteps),
    },
    {
      provide: GenerationEngine,
      inject: [GenerationQueue, GENERATION_PROVIDER],
      useFactory: (queue: GenerationQueue, provider: GenerationProvider): GenerationEngine => ({
        estimateDurationMs: (input) => provider.estimateDurationMs(input),
        enqueue: (taskId, attempt) => queue.enqueue(taskId, attempt),
        discard: (taskId, attempt) => queue.discard(taskId, attempt),
      }),
    },
  ],
  exports: [GenerationQueue, ArtifactStore, GENERATION_PROVIDER, GenerationEngine],
})
export class GenerationModule {}

/** Where jobs are processed: the BullMQ worker, the runner that drives a task through the provider, the sweeper. */
@Module({
  imports: [GenerationModule, TasksCoreModule, ObservabilityModule],
  providers: [GenerationRunner, GenerationProcessor, GenerationSweeper],
})
export class GenerationWorkersModule {}

/** Where HTTP is served: GET /v1/artifacts/{name}. */
@Module({ imports: [GenerationModule], controllers: [ArtifactsController] })
export class ArtifactsModule {}
