import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module.js';
import { TasksCoreModule } from '../tasks/tasks-core.module.js';
import { EndpointsController } from './endpoints.controller.js';
import { EndpointsService } from './endpoints.service.js';

@Module({
  imports: [AuthModule, TasksCoreModule],
  controllers: [EndpointsController],
  providers: [EndpointsService],
})
export class EndpointsModule {}
