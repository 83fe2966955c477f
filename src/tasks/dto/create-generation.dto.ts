import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { UniqueItems } from '../../common/validation.js';

export const WEBHOOK_EVENT_NAMES = ['progress', 'completed', 'failed', 'cancelled'] as const;
export type WebhookEventName = (typeof WEBHOOK_EVENT_NAMES)[number];

export class WebhookRetryDto {
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(20)
  max_attempts?: number;

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @Matches(/^\d+(\.\d+)?(ms|s|m|h)$/, {
    each: true,
    message: 'each schedule entry must be a duration like 0s, 30s, 5m or 2h',
  })
  schedule?: string[];
}

export class SimulateDto {
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  duration_ms?: number;

  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(100)
  fail_at_percent?: number;

  @IsOptional()
  @IsString()
  @MaxLength(1_000)
  error?: string;
}

/** The body of POST /v1/{videos,images}/generations/async: the fields Conduit's Node SDK sends, plus Herald's. */
export class CreateGenerationDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(4_000)
  prompt: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  model: string;

  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(1)
  @Max(60)
  duration?: number;

  @IsOptional()
  @IsString()
  @Matches(/^[1-9]\d{0,4}x[1-9]\d{0,4}$/, { message: 'size must look like 1280x720' })
  size?: string;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(120)
  fps?: number;

  @IsOptional()
  @IsString()
  @MaxLength(200)
  style?: string;

  @IsOptional()
  @IsIn(['url', 'b64_json'])
  response_format?: 'url' | 'b64_json';

  @IsOptional()
  @IsString()
  @MaxLength(256)
  user?: string;

  @IsOptional()
  @IsInt()
  seed?: number;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10)
  n?: number;

  @IsOptional()
  @IsString()
  @MaxLength(2_048)
  webhook_url?: string;

  /** Checked in full by `webhookHeaderErrors` (names, values, reserved names). */
  @IsOptional()
  @IsObject()
  webhook_headers?: Record<string, unknown>;

  @IsOptional()
  @IsObject()
  webhook_metadata?: Record<string, unknown>;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3_600)
  timeout_seconds?: number;

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(WEBHOOK_EVENT_NAMES.length)
  @UniqueItems()
  @IsIn(WEBHOOK_EVENT_NAMES, { each: true })
  webhook_events?: WebhookEventName[];

  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => WebhookRetryDto)
  webhook_retry?: WebhookRetryDto;

  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => SimulateDto)
  simulate?: SimulateDto;

  [param: string]: unknown;
}

/** Top-level fields Herald understands; any other top-level field is a model-specific parameter. */
export const KNOWN_FIELDS: ReadonlySet<string> = new Set([
  'prompt',
  'model',
  'duration',
  'size',
  'fps',
  'style',
  'response_format',
  'user',
  'seed',
  'n',
  'webhook_url',
  'webhook_headers',
  'webhook_metadata',
  'timeout_seconds',
  'webhook_events',
  'webhook_retry',
  'simulate',
]);
