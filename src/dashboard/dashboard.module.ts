import { Module } from '@nestjs/common';
import { GenerationModule } from '../generation/generation.module.js';
import { WebhooksModule } from '../webhooks/webhooks.module.js';
import { OverviewController } from './overview.controller.js';

/** The dashboard's own API (the page itself is static, see static.ts). */
@Module({ imports: [GenerationModule, WebhooksModule], controllers: [OverviewController] })
export class DashboardModule {}
