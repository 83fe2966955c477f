import { Type } from 'class-transformer';
import { IsIn, IsInt, IsISO8601, IsObject, IsOptional, IsUUID, Max, Min, ValidateNested } from 'class-validator';
import { SimulateDto } from './create-generation.dto.js';
import { TASK_STATUSES, TaskStatus } from '../task-state.js';

export class ListTasksQuery {
  @IsOptional()
  @IsIn(TASK_STATUSES)
  status?: TaskStatus;

  @IsOptional()
  @IsIn(['video', 'image'])
  kind?: 'video' | 'image';

  @IsOptional()
  @IsISO8601({ strict: true })
  created_after?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;

  /** The `next_cursor` of the previous page: the id of its last task. */
  @IsOptional()
  @IsUUID()
  cursor?: string;
}

/** Conduit's long poll: `timeout` seconds (clamped to 1–600 as Conduit does, default 300); `interval` is accepted
 * for its clients and not needed (Herald answers on the task's terminal event, not by polling). */
export class PollTaskQuery {
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  timeout?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  interval?: number;
}

export class RetryTaskDto {
  /** Herald extension: replaces the simulator settings for the new attempt (e.g. to let it succeed). */
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => SimulateDto)
  simulate?: SimulateDto;
}
