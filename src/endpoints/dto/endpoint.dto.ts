import { OmitType, PartialType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ValidateNested } from 'class-validator';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsInt,
  IsISO8601,
  IsNotEmpty,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { SUBSCRIBABLE } from '../../events/event-catalogue.js';
import { UniqueItems } from '../../common/validation.js';

const SECRET = /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/;

export class BatchDto {
  @IsInt({ message: 'max_events must be an integer from 1 to 100' })
  @Min(1)
  @Max(100)
  max_events: number;

  @IsOptional()
  @IsInt({ message: 'max_wait_ms must be an integer from 0 to 10000' })
  @Min(0)
  @Max(10_000)
  max_wait_ms?: number;
}

export class CreateEndpointDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(2_048)
  url: string;

  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(SUBSCRIBABLE.length)
  @UniqueItems()
  @IsIn(SUBSCRIBABLE, { each: true, message: `each event must be one of ${SUBSCRIBABLE.join(', ')}` })
  events?: string[];

  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string;

  @IsOptional()
  @IsObject()
  headers?: Record<string, unknown>;

  @IsOptional()
  @IsString()
  @Matches(SECRET, { message: 'secret must be whsec_ followed by the base64 of at least 24 random bytes' })
  secret?: string;

  @IsOptional()
  @IsIn(['enabled', 'disabled'])
  status?: 'enabled' | 'disabled';

  @IsOptional()
  @IsInt({ message: 'rate_limit_per_second must be an integer from 1 to 10000, or null for no limit' })
  @Min(1, { message: 'rate_limit_per_second must be at least 1 (null for no limit)' })
  @Max(10_000, { message: 'rate_limit_per_second must be at most 10000' })
  rate_limit_per_second?: number | null;

  /** Batch delivery; null turns it off. */
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => BatchDto)
  batch?: BatchDto | null;
}

/** PATCH: any field of a create, each optional; the secret changes only by rotation (POST …/rotate-secret). */
export class UpdateEndpointDto extends PartialType(OmitType(CreateEndpointDto, ['secret'] as const)) {}

export class RecoverDto {
  @IsISO8601({ strict: true })
  since: string;
}

export class EndpointDeliveriesQuery {
  @IsOptional()
  @IsIn(['pending', 'sending', 'succeeded', 'failed', 'superseded'])
  status?: string;

  @IsOptional()
  @IsString()
  @MaxLength(32)
  event_type?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;

  @IsOptional()
  @Matches(/^[0-9a-f-]{36}$/)
  cursor?: string;
}
