import { BullModule } from '@nestjs/bullmq';
import { DynamicModule, Module } from '@nestjs/common';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { TasksCoreModule } from '../tasks/tasks-core.module.js';
import { ArtifactStore } from './artifact-store.js';
import { GenerationProcessor } from './generation.processor.js';
import { GENERATION_QUEUE, GenerationQueue } from './generation.queue.js';
import { GenerationRunner } from './generation.runner.js';
import { GenerationSweeper } from './generation.sweeper.js';
import { RetentionService } from '../operations/retention.service.js';
import { GENERATION_PROVIDER } from './provider.js';
import { SimulatorProvider } from './simulator.provider.js';

/** The generation queue for every role; the worker, runner and sweeper only where jobs are processed. */
@Module({})
export class GenerationModule {
  static register({ worker }: { worker: boolean }): DynamicModule {
    return {
      module: GenerationModule,
      // Registered once by AppModule with the role's choice; the API finds the queue through it.
      global: true,
      imports: [BullModule.registerQueue({ name: GENERATION_QUEUE }), TasksCoreModule],
      providers: [
        GenerationQueue,
        ArtifactStore,
        {
          provide: GENERATION_PROVIDER,
          inject: [CONFIG],
          useFactory: (config: HeraldConfig) => new SimulatorProvider(config.simulatorDurationMs),
        },
        ...(worker ? [GenerationRunner, GenerationProcessor, GenerationSweeper, RetentionService] : []),
      ],
      exports: [GenerationQueue, ArtifactStore, GENERATION_PROVIDER],
    };
  }
}
