import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { Controller, Get, Param } from '@nestjs/common';
import { TenantId } from '../auth/auth.guard.js';
import { ApiProblems } from '../common/api-problems.js';
import { ErrorCode } from '../common/errors.js';
import { DeliveryLog } from '../webhooks/delivery-log.js';
import { deliveryView } from '../webhooks/delivery-view.js';
import { TasksService } from './tasks.service.js';

/** The deliveries of one task's events: a task route (404 for an unknown task), read from delivery's log. */
@ApiTags('deliveries')
@Controller('v1/tasks')
export class TaskDeliveriesController {
  constructor(
    private readonly tasks: TasksService,
    private readonly log: DeliveryLog,
  ) {}

  @Get(':id/deliveries')
  @ApiOperation({ operationId: 'listTaskDeliveries', summary: 'List the webhook deliveries of a task' })
  @ApiResponse({ status: 200, description: '{data}: every delivery of the task’s events' })
  @ApiProblems(ErrorCode.TaskNotFound)
  async forTask(@TenantId() tenantId: string, @Param('id') id: string) {
    await this.tasks.get(tenantId, id);
    return { data: (await this.log.forTask(tenantId, id)).map(deliveryView) };
  }
}
