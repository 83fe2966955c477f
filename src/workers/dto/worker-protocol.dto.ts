import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
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
import { UniqueItems } from '../../common/validation.js';

export const WORKER_ID = /^[A-Za-z0-9._:@/-]{1,200}$/;
export const MODEL_GLOB = /^[^\s]{1,200}$/;
/** Artifact names as a worker chooses them: a file name, no path, not hidden. */
export const ARTIFACT_UPLOAD_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** POST /v1/worker/leases */
export class LeaseRequestDto {
  static accepts = (body: unknown) => leaseRequestOk(body);

  @IsString()
  @Matches(WORKER_ID, { message: 'worker_id must be 1–200 characters of A-Z a-z 0-9 . _ : @ / -' })
  worker_id: string;

  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(100)
  @UniqueItems()
  @IsString({ each: true })
  @Matches(MODEL_GLOB, { each: true, message: 'each model must be 1–200 characters without spaces (* is a wildcard)' })
  models: string[];

  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(2)
  @UniqueItems()
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
  static accepts = (body: unknown) => heartbeatOk(body);

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

const URL_PATTERN = /^https?:\/\/\S+$/;
const MIME_TYPE = /^[\w.+-]+\/[\w.+-]+$/;
const FAIL_CODE = /^[A-Za-z0-9_.-]{1,64}$/;

export class OutputDto {
  @IsOptional()
  @IsString()
  @Matches(ARTIFACT_UPLOAD_NAME, { message: 'artifact must name a file uploaded to this lease' })
  artifact?: string;

  @IsOptional()
  @IsString()
  @MaxLength(4_096)
  @Matches(URL_PATTERN, { message: 'url must be an http(s) URL' })
  url?: string;

  @IsOptional()
  @IsString()
  @Matches(MIME_TYPE, { message: 'mime_type must be a media type like video/mp4' })
  mime_type?: string;

  @IsOptional()
  @IsObject()
  metadata?: Record<string, unknown>;
}

/** POST /v1/worker/leases/{lease_id}/complete */
export class CompleteDto {
  static accepts = (body: unknown) => completeOk(body);

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
  static accepts = (body: unknown) => failOk(body);

  @IsString()
  @MaxLength(2_000)
  error: string;

  @IsOptional()
  @IsString()
  @Matches(FAIL_CODE, { message: 'code must be 1–64 characters of A-Z a-z 0-9 _ . -' })
  code?: string;

  @IsOptional()
  @IsBoolean()
  retryable?: boolean;
}

// The decorators above, as plain checks of a whole body (RequestValidationPipe's fast path, FastChecked): true only
// for a body the decorators pass. An absent optional field is `undefined` only (class-validator also skips null;
// such a body takes the slow path, which answers the same).
type Body = Record<string, unknown>;
const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max: number, pattern?: RegExp): v is string =>
  typeof v === 'string' && v.length <= max && (!pattern || pattern.test(v));
const inRange = (v: unknown, min: number, max: number) =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
const uniqueList = (v: unknown, min: number, max: number, each: (x: unknown) => boolean): v is unknown[] =>
  Array.isArray(v) && v.length >= min && v.length <= max && new Set(v).size === v.length && v.every(each);

export function leaseRequestOk(b: unknown): boolean {
  return (
    isObject(b) &&
    isText(b.worker_id, 200, WORKER_ID) &&
    uniqueList(b.models, 1, 100, (m) => isText(m, 200, MODEL_GLOB)) &&
    (b.kinds === undefined || uniqueList(b.kinds, 1, 2, (k) => k === 'video' || k === 'image')) &&
    (b.max_jobs === undefined || (Number.isInteger(b.max_jobs) && inRange(b.max_jobs, 1, 32))) &&
    (b.wait_seconds === undefined || inRange(b.wait_seconds, 0, 60))
  );
}

export function heartbeatOk(b: unknown): boolean {
  return (
    isObject(b) &&
    (b.progress === undefined || inRange(b.progress, 0, 100)) &&
    (b.message === undefined || isText(b.message, 1_000))
  );
}

function outputOk(o: unknown): boolean {
  return (
    isObject(o) &&
    (o.artifact === undefined || isText(o.artifact, 100, ARTIFACT_UPLOAD_NAME)) &&
    (o.url === undefined || isText(o.url, 4_096, URL_PATTERN)) &&
    (o.mime_type === undefined || isText(o.mime_type, 200, MIME_TYPE)) &&
    (o.metadata === undefined || isObject(o.metadata))
  );
}

export function completeOk(b: unknown): boolean {
  return (
    isObject(b) &&
    Array.isArray(b.outputs) &&
    b.outputs.length >= 1 &&
    b.outputs.length <= 32 &&
    b.outputs.every(outputOk) &&
    (b.revised_prompt === undefined || isText(b.revised_prompt, 4_000))
  );
}

export function failOk(b: unknown): boolean {
  return (
    isObject(b) &&
    isText(b.error, 2_000) &&
    (b.code === undefined || isText(b.code, 64, FAIL_CODE)) &&
    (b.retryable === undefined || typeof b.retryable === 'boolean')
  );
}
