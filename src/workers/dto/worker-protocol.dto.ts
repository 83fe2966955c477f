import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
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

export const WORKER_ID = /^[A-Za-z0-9._:@/-]{1,200}$/;
export const MODEL_GLOB = /^[^\s]{1,200}$/;
/** Artifact names as a worker chooses them: a file name, no path, not hidden. */
export const ARTIFACT_UPLOAD_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** POST /v1/worker/leases */
export class LeaseRequestDto {
  @IsString()
  @Matches(WORKER_ID, { message: 'worker_id must be 1–200 characters of A-Z a-z 0-9 . _ : @ / -' })
  worker_id: string;

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(100)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(MODEL_GLOB, { each: true, message: 'each model must be 1–200 characters without spaces (* is a wildcard)' })
  models: string[];

  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayUnique()
  @IsIn(['video', 'image'], { each: true })
  kinds?: Array<'video' | 'image'>;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(32)
  max_jobs?: number;

  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(60)
  wait_seconds?: number;
}

/** POST /v1/worker/leases/{lease_id}/heartbeat */
export class HeartbeatDto {
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(100)
  progress?: number;

  @IsOptional()
  @IsString()
  @MaxLength(1_000)
  message?: string;
}

export class OutputDto {
  @IsOptional()
  @IsString()
  @Matches(ARTIFACT_UPLOAD_NAME, { message: 'artifact must name a file uploaded to this lease' })
  artifact?: string;

  @IsOptional()
  @IsString()
  @MaxLength(4_096)
  @Matches(/^https?:\/\/\S+$/, { message: 'url must be an http(s) URL' })
  url?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[\w.+-]+\/[\w.+-]+$/, { message: 'mime_type must be a media type like video/mp4' })
  mime_type?: string;

  @IsOptional()
  @IsObject()
  metadata?: Record<string, unknown>;
}

/** POST /v1/worker/leases/{lease_id}/complete */
export class CompleteDto {
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(32)
  @ValidateNested({ each: true })
  @Type(() => OutputDto)
  outputs: OutputDto[];

  @IsOptional()
  @IsString()
  @MaxLength(4_000)
  revised_prompt?: string;
}

/** POST /v1/worker/leases/{lease_id}/fail */
export class FailDto {
  @IsString()
  @MaxLength(2_000)
  error: string;

  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'code must be 1–64 characters of A-Z a-z 0-9 _ . -' })
  code?: string;

  @IsOptional()
  @IsBoolean()
  retryable?: boolean;
}
