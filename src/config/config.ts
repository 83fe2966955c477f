import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { IsIn, IsInt, IsNumber, IsOptional, IsString, Matches, Max, Min, validateSync } from 'class-validator';
import { Type } from 'class-transformer';
import path from 'node:path';
import { type Cidr, parseCidrs } from './cidrs.js';
import { parseSchedule } from './durations.js';
import { parseModelRoutes, type ModelRoute } from './model-routes.js';
import { hashTagOf, parseClusterNodes, type RedisClusterTarget } from './cluster-nodes.js';
import { HERALD_VERSION } from '../version.js';
import { faultOf } from '../common/validation.js';

export const ROLES = ['all', 'api', 'worker'] as const;
export type Role = (typeof ROLES)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The environment as Herald reads it: every variable, its type and range. The one config schema. */
export class EnvironmentVariables {
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT?: number;

  @IsOptional()
  @IsString()
  HOST?: string;

  @IsOptional()
  @IsIn(ROLES)
  ROLE?: Role;

  @IsOptional()
  @IsString()
  DATA_DIR?: string;

  @IsOptional()
  @Matches(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, { message: 'DATABASE_URL must be sqlite:<path> or postgres://…' })
  DATABASE_URL?: string;

  @IsOptional()
  @Matches(/^(rediss?|redis\+sentinel):\/\/.+/, {
    message: 'REDIS_URL must be redis://host:port, rediss://… or redis+sentinel://…',
  })
  REDIS_URL?: string;

  @IsOptional()
  @IsString()
  REDIS_CLUSTER_NODES?: string;

  @IsOptional()
  @Matches(/^[A-Za-z0-9{}_.-]{1,64}$/, { message: 'QUEUE_PREFIX must be 1–64 letters, digits, {}, _, . or -' })
  QUEUE_PREFIX?: string;

  @IsOptional()
  @Matches(/^https?:\/\/[^\s]+$/, { message: 'PUBLIC_BASE_URL must be an http(s) URL' })
  PUBLIC_BASE_URL?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(100)
  @Max(300_000)
  WEBHOOK_TIMEOUT_MS?: number;

  @IsOptional()
  @IsString()
  WEBHOOK_RETRY_SCHEDULE?: string;

  @IsOptional()
  @IsString()
  WEBHOOK_ALLOWED_CIDRS?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(10_000)
  WEBHOOK_CONCURRENCY?: number;

  @IsOptional()
  @IsString()
  @Matches(/^[\x20-\x7e]{1,200}$/, { message: 'WEBHOOK_USER_AGENT must be 1–200 printable ASCII characters' })
  WEBHOOK_USER_AGENT?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000)
  GENERATION_CONCURRENCY?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(86_400_000)
  SIMULATOR_DURATION_MS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  SIMULATOR_STEPS?: number;

  @IsOptional()
  @Matches(/^([A-Za-z0-9+/]{43}=|[0-9a-fA-F]{64})$/, {
    message: 'ENCRYPTION_KEY must be 32 bytes as base64 (44 chars) or hex (64 chars)',
  })
  ENCRYPTION_KEY?: string;

  @IsOptional()
  @IsIn(LOG_LEVELS)
  LOG_LEVEL?: LogLevel;

  // Fractions are allowed (0.002 ≈ 3 min) so a soak can show retention keeping the tables bounded.
  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.0001)
  @Max(3650)
  RETENTION_DAYS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.0001)
  @Max(10_000)
  ENDPOINT_DISABLE_AFTER_HOURS?: number;

  @IsOptional()
  @Matches(/^[A-Za-z0-9_\-.]{16,200}$/, { message: 'BOOTSTRAP_API_KEY must be 16–200 characters of A-Z a-z 0-9 _ - .' })
  BOOTSTRAP_API_KEY?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1_024)
  @Max(104_857_600)
  BODY_LIMIT_BYTES?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(20)
  @Max(600_000)
  SWEEP_INTERVAL_MS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(600_000)
  SHUTDOWN_GRACE_MS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(50)
  @Max(300_000)
  SSE_HEARTBEAT_MS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  RATE_LIMIT_PER_SECOND?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  STREAM_MAX_CONNECTIONS_PER_KEY?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1_024)
  @Max(1_073_741_824)
  STREAM_BUFFER_LIMIT_BYTES?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  @Max(1_000)
  HEAP_GROWING_PERCENT?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(10_000)
  CIRCUIT_FAILURES?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(10)
  @Max(600_000)
  CIRCUIT_COOLDOWN_MS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  WEBHOOK_HOST_RATE_LIMIT_PER_SECOND?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1_024)
  @Max(104_857_600)
  WEBHOOK_BATCH_MAX_BYTES?: number;

  @IsOptional()
  @IsString()
  MODEL_ROUTES?: string;

  @IsOptional()
  @Type(() => Number)
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.05)
  @Max(3_600)
  WORKER_LEASE_SECONDS?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  WORKER_MAX_LEASES?: number;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_099_511_627_776)
  ARTIFACT_MAX_BYTES?: number;

  @IsOptional()
  @Matches(/^[A-Za-z0-9_\-.]{16,200}$/, {
    message: 'BOOTSTRAP_WORKER_TOKEN must be 16–200 characters of A-Z a-z 0-9 _ - .',
  })
  BOOTSTRAP_WORKER_TOKEN?: string;

  @IsOptional()
  @Matches(/^https?:\/\/[^\s]+$/, { message: 'OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL' })
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;

  @IsOptional()
  @Matches(/^https?:\/\/[^\s]+$/, { message: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be an http(s) URL' })
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string;

  @IsOptional()
  @IsString()
  OTEL_EXPORTER_OTLP_HEADERS?: string;

  @IsOptional()
  @Matches(/^[\x21-\x7e][\x20-\x7e]{0,199}$/, { message: 'OTEL_SERVICE_NAME must be 1–200 printable ASCII characters' })
  OTEL_SERVICE_NAME?: string;

  @IsOptional()
  @IsIn(['true', 'false'])
  OTEL_SDK_DISABLED?: string;
}

export interface HeraldConfig {
  version: string;
  port: number;
  host?: string;
  role: Role;
  dataDir: string;
  database: { type: 'sqlite'; path: string } | { type: 'postgres'; url: string };
  redisUrl: string;
  /** REDIS_CLUSTER_NODES: set in cluster mode, and then every Redis client is a cluster client (redisUrl unused). */
  redisCluster?: RedisClusterTarget;
  queuePrefix: string;
  publicBaseUrl: string;
  webhook: {
    timeoutMs: number;
    retrySchedule: number[];
    allowedCidrs: Cidr[];
    concurrency: number;
    userAgent: string;
    /** Consecutive failures to one target URL that open its circuit, and the first cool-down (doubling to 10 min). */
    circuitFailures: number;
    circuitCooldownMs: number;
    /** Requests per second to one host, across every worker process; null = no cap. */
    hostRateLimitPerSecond: number | null;
    /** The most bytes a batch request's body holds: a batch that would be larger is cut (one event always goes). */
    batchMaxBytes: number;
  };
  generationConcurrency: number;
  simulatorDurationMs: number;
  /** Steps a simulated run takes: a progress event after each but the last, which completes. */
  simulatorSteps: number;
  encryptionKey?: Buffer;
  logLevel: LogLevel;
  retentionDays: number;
  endpointDisableAfterHours: number;
  bootstrapApiKey?: string;
  bodyLimitBytes: number;
  sweepIntervalMs: number;
  /** On shutdown, how long requests on the wire may take before their connections are closed. */
  shutdownGraceMs: number;
  sseHeartbeatMs: number;
  rateLimitPerSecond: number;
  /** Tenant-wide streams (SSE + WebSocket): open connections per API key and process, and a connection's unsent bytes. */
  streams: { maxConnectionsPerKey: number; bufferLimitBytes: number };
  /** How far V8 may grow the heap past what survived its last full collection (0 = V8's own heuristics). */
  heapGrowingPercent: number;
  /** MODEL_ROUTES: which provider runs a model, first match wins. */
  modelRoutes: ModelRoute[];
  workers: { leaseSeconds: number; maxLeases: number; bootstrapToken?: string };
  artifactMaxBytes: number;
  /** OpenTelemetry export (OTLP over HTTP, JSON); absent when no OTLP endpoint is set: no SDK is loaded then. */
  tracing?: { tracesUrl: string; headers: Record<string, string>; serviceName: string };
}

/** A configuration value is wrong; the message names the variable and fits on one line. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `key=value,key2=value2`, values percent-encoded, as the OpenTelemetry spec writes OTEL_EXPORTER_OTLP_HEADERS. */
function parseOtlpHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = eq > 0 ? part.slice(0, eq).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new Error(`must be a comma list of name=value ("${part.slice(0, 40)}" is not)`);
    headers[name] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return headers;
}

/** Exporting is on when an OTLP endpoint is given and the SDK is not disabled; the signal path follows the spec. */
function tracingConfig(
  vars: EnvironmentVariables,
  field: <T>(name: string, parse: () => T) => T,
): HeraldConfig['tracing'] {
  const base = vars.OTEL_EXPORTER_OTLP_ENDPOINT;
  const tracesUrl =
    vars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (!tracesUrl || vars.OTEL_SDK_DISABLED === 'true') return undefined;
  return {
    tracesUrl,
    headers: field('OTEL_EXPORTER_OTLP_HEADERS', () => parseOtlpHeaders(vars.OTEL_EXPORTER_OTLP_HEADERS ?? '')),
    serviceName: vars.OTEL_SERVICE_NAME ?? 'herald',
  };
}

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * One Redis or a Redis Cluster, never both: REDIS_URL left at its default gives way to REDIS_CLUSTER_NODES. In
 * cluster mode the queue prefix needs a hash tag (BullMQ's scripts touch many keys of a queue at once, which a
 * cluster allows only within one slot); left unset it is `{herald}`.
 */
function redisTarget(vars: EnvironmentVariables): { cluster?: RedisClusterTarget; queuePrefix: string } {
  if (vars.REDIS_CLUSTER_NODES === undefined) return { queuePrefix: vars.QUEUE_PREFIX ?? 'herald' };
  if (vars.REDIS_URL !== undefined && vars.REDIS_URL.replace(/\/$/, '') !== DEFAULT_REDIS_URL) {
    throw new ConfigError(
      'Invalid configuration: set REDIS_URL (one Redis or Sentinel) or REDIS_CLUSTER_NODES (a Redis Cluster), not both.',
    );
  }
  let cluster: RedisClusterTarget;
  try {
    cluster = parseClusterNodes(vars.REDIS_CLUSTER_NODES);
  } catch (err) {
    throw new ConfigError(`Invalid configuration: REDIS_CLUSTER_NODES ${(err as Error).message}.`);
  }
  const queuePrefix = vars.QUEUE_PREFIX ?? '{herald}';
  if (!hashTagOf(queuePrefix)) {
    throw new ConfigError(
      `Invalid configuration: QUEUE_PREFIX must contain a hash tag like {herald} with REDIS_CLUSTER_NODES, so that each queue's keys share one cluster slot (got "${queuePrefix}").`,
    );
  }
  return { cluster, queuePrefix };
}

function parseKey(text: string): Buffer {
  return /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
}

/** Reads and validates the environment. Pure: takes the env object, returns typed config or throws ConfigError. */
export function loadConfig(env: Record<string, string | undefined>): HeraldConfig {
  const raw: Record<string, string> = {};
  for (const key of ENV_NAMES) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const vars = plainToInstance(EnvironmentVariables, raw);
  const errors = validateSync(vars, { whitelist: true, forbidUnknownValues: false });
  if (errors.length > 0) {
    const first = errors[0];
    // The same rule as a request's fields: a value of the wrong kind is told its kind before any range it misses.
    const message = faultOf(first) ?? `${first.property} is invalid`;
    throw new ConfigError(`Invalid configuration: ${message} (got "${raw[first.property]}").`);
  }
  const field = <T>(name: string, parse: () => T): T => {
    try {
      return parse();
    } catch (err) {
      throw new ConfigError(`Invalid configuration: ${name} ${(err as Error).message} (got "${raw[name]}").`);
    }
  };

  const port = vars.PORT ?? 3000;
  const redis = redisTarget(vars);
  const dataDir = path.resolve(vars.DATA_DIR ?? './data');
  const dbUrl = vars.DATABASE_URL;
  const database: HeraldConfig['database'] =
    dbUrl && /^postgres(ql)?:/.test(dbUrl)
      ? { type: 'postgres', url: dbUrl }
      : {
          type: 'sqlite',
          path: dbUrl ? path.resolve(dbUrl.replace(/^sqlite:(\/\/)?/, '')) : path.join(dataDir, 'herald.sqlite'),
        };

  return {
    version: HERALD_VERSION,
    port,
    host: vars.HOST,
    role: vars.ROLE ?? 'all',
    dataDir,
    database,
    redisUrl: vars.REDIS_URL ?? DEFAULT_REDIS_URL,
    redisCluster: redis.cluster,
    queuePrefix: redis.queuePrefix,
    publicBaseUrl: (vars.PUBLIC_BASE_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    webhook: {
      timeoutMs: vars.WEBHOOK_TIMEOUT_MS ?? 30_000,
      retrySchedule: field('WEBHOOK_RETRY_SCHEDULE', () =>
        parseSchedule(vars.WEBHOOK_RETRY_SCHEDULE ?? '0s,1m,5m,30m,2h'),
      ),
      allowedCidrs: field('WEBHOOK_ALLOWED_CIDRS', () =>
        parseCidrs(
          (vars.WEBHOOK_ALLOWED_CIDRS ?? '')
            .split(',')
            .map((c) => c.trim())
            .filter(Boolean),
        ),
      ),
      concurrency: vars.WEBHOOK_CONCURRENCY ?? 50,
      userAgent: vars.WEBHOOK_USER_AGENT ?? `Herald/${HERALD_VERSION}`,
      circuitFailures: vars.CIRCUIT_FAILURES ?? 10,
      circuitCooldownMs: vars.CIRCUIT_COOLDOWN_MS ?? 30_000,
      hostRateLimitPerSecond: vars.WEBHOOK_HOST_RATE_LIMIT_PER_SECOND ?? null,
      batchMaxBytes: vars.WEBHOOK_BATCH_MAX_BYTES ?? 1_048_576,
    },
    generationConcurrency: vars.GENERATION_CONCURRENCY ?? 10,
    simulatorDurationMs: vars.SIMULATOR_DURATION_MS ?? 10_000,
    simulatorSteps: vars.SIMULATOR_STEPS ?? 10,
    encryptionKey: vars.ENCRYPTION_KEY ? parseKey(vars.ENCRYPTION_KEY) : undefined,
    logLevel: vars.LOG_LEVEL ?? 'info',
    retentionDays: vars.RETENTION_DAYS ?? 30,
    endpointDisableAfterHours: vars.ENDPOINT_DISABLE_AFTER_HOURS ?? 120,
    bootstrapApiKey: vars.BOOTSTRAP_API_KEY,
    bodyLimitBytes: vars.BODY_LIMIT_BYTES ?? 1_048_576,
    sweepIntervalMs: vars.SWEEP_INTERVAL_MS ?? 5_000,
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS ?? 10_000,
    sseHeartbeatMs: vars.SSE_HEARTBEAT_MS ?? 15_000,
    rateLimitPerSecond: vars.RATE_LIMIT_PER_SECOND ?? 1_000,
    streams: {
      maxConnectionsPerKey: vars.STREAM_MAX_CONNECTIONS_PER_KEY ?? 100,
      bufferLimitBytes: vars.STREAM_BUFFER_LIMIT_BYTES ?? 1_048_576,
    },
    heapGrowingPercent: vars.HEAP_GROWING_PERCENT ?? 150,
    modelRoutes: field('MODEL_ROUTES', () => parseModelRoutes(vars.MODEL_ROUTES ?? '*=simulator')),
    workers: {
      leaseSeconds: vars.WORKER_LEASE_SECONDS ?? 30,
      maxLeases: vars.WORKER_MAX_LEASES ?? 3,
      bootstrapToken: vars.BOOTSTRAP_WORKER_TOKEN,
    },
    artifactMaxBytes: vars.ARTIFACT_MAX_BYTES ?? 512 * 1_048_576,
    tracing: tracingConfig(vars, field),
  };
}

/** Every variable the schema knows, for reading only those out of the environment. */
export const ENV_NAMES = [
  'PORT',
  'HOST',
  'ROLE',
  'DATA_DIR',
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_CLUSTER_NODES',
  'QUEUE_PREFIX',
  'PUBLIC_BASE_URL',
  'WEBHOOK_TIMEOUT_MS',
  'WEBHOOK_RETRY_SCHEDULE',
  'WEBHOOK_ALLOWED_CIDRS',
  'WEBHOOK_CONCURRENCY',
  'WEBHOOK_USER_AGENT',
  'GENERATION_CONCURRENCY',
  'SIMULATOR_DURATION_MS',
  'SIMULATOR_STEPS',
  'ENCRYPTION_KEY',
  'LOG_LEVEL',
  'RETENTION_DAYS',
  'ENDPOINT_DISABLE_AFTER_HOURS',
  'BOOTSTRAP_API_KEY',
  'BODY_LIMIT_BYTES',
  'SWEEP_INTERVAL_MS',
  'SHUTDOWN_GRACE_MS',
  'SSE_HEARTBEAT_MS',
  'RATE_LIMIT_PER_SECOND',
  'HEAP_GROWING_PERCENT',
  'CIRCUIT_FAILURES',
  'CIRCUIT_COOLDOWN_MS',
  'WEBHOOK_HOST_RATE_LIMIT_PER_SECOND',
  'WEBHOOK_BATCH_MAX_BYTES',
  'MODEL_ROUTES',
  'WORKER_LEASE_SECONDS',
  'WORKER_MAX_LEASES',
  'ARTIFACT_MAX_BYTES',
  'BOOTSTRAP_WORKER_TOKEN',
  'STREAM_MAX_CONNECTIONS_PER_KEY',
  'STREAM_BUFFER_LIMIT_BYTES',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_SERVICE_NAME',
  'OTEL_SDK_DISABLED',
];
