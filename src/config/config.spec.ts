import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';
import { formatDuration, parseDuration, parseSchedule } from './durations.js';

describe('loadConfig', () => {
  it('has embedded defaults that need no setup', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      role: 'all',
      redisUrl: 'redis://127.0.0.1:6379',
      publicBaseUrl: 'http://localhost:3000',
      logLevel: 'info',
    });
    expect(c.database).toEqual({ type: 'sqlite', path: path.resolve('data/herald.sqlite') });
    expect(c.webhook.retrySchedule).toEqual([0, 60_000, 300_000, 1_800_000, 7_200_000]);
    expect(c.webhook.timeoutMs).toBe(30_000);
    expect(c.webhook.userAgent).toMatch(/^Herald\/\d+\.\d+\.\d+/);
    expect(c.heapGrowingPercent).toBe(150);
  });

  it('reads PostgreSQL from DATABASE_URL and sqlite paths relative to the working directory', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/herald' }).database).toEqual({
      type: 'postgres',
      url: 'postgres://u:p@db:5432/herald',
    });
    expect(loadConfig({ DATABASE_URL: 'sqlite:./x/h.db' }).database).toEqual({
      type: 'sqlite',
      path: path.resolve('x/h.db'),
    });
  });

  it('parses schedules, CIDRs, keys and numbers', () => {
    const c = loadConfig({
      WEBHOOK_RETRY_SCHEDULE: '0s, 250ms,1m',
      WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8,::1/128',
      ENCRYPTION_KEY: 'ab'.repeat(32),
      PORT: '8080',
      SIMULATOR_DURATION_MS: '0',
      HEAP_GROWING_PERCENT: '0',
      RETENTION_DAYS: '0.002',
    });
    expect(c.webhook.retrySchedule).toEqual([0, 250, 60_000]);
    expect(c.webhook.allowedCidrs.map(([address, bits]) => `${address.toString()}/${bits}`)).toEqual([
      '127.0.0.0/8',
      '::1/128',
    ]);
    expect(c.encryptionKey?.length).toBe(32);
    expect(c.port).toBe(8080);
    expect(c.simulatorDurationMs).toBe(0);
    expect(c.heapGrowingPercent).toBe(0);
    expect(c.retentionDays).toBe(0.002);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['ROLE', 'boss'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'localhost:6379'],
    ['WEBHOOK_RETRY_SCHEDULE', '1m,soon'],
    ['WEBHOOK_ALLOWED_CIDRS', '10.0.0.0'],
    ['WEBHOOK_ALLOWED_CIDRS', '10.0.0.0/40'],
    ['WEBHOOK_TIMEOUT_MS', '1.5'],
    ['ENCRYPTION_KEY', 'short'],
    ['LOG_LEVEL', 'loud'],
    ['GENERATION_CONCURRENCY', '0'],
    ['HEAP_GROWING_PERCENT', '-5'],
    ['HEAP_GROWING_PERCENT', '2000'],
    ['MODEL_ROUTES', 'minimax-*=gpu'],
    ['MODEL_ROUTES', 'minimax-*'],
    ['WORKER_LEASE_SECONDS', '0'],
    ['WORKER_MAX_LEASES', '1.5'],
    ['ARTIFACT_MAX_BYTES', '0'],
    ['BOOTSTRAP_WORKER_TOKEN', 'short'],
    ['RETENTION_DAYS', '0'],
  ])('rejects %s=%s with a one-line message naming the variable', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(name);
    expect(message).not.toContain('\n');
  });

  it('reads model routes and worker settings, fractional lease seconds included', () => {
    const config = loadConfig({
      MODEL_ROUTES: 'minimax-*=workers,*=simulator',
      WORKER_LEASE_SECONDS: '0.5',
      WORKER_MAX_LEASES: '5',
    });
    expect(config.modelRoutes).toEqual([
      { pattern: 'minimax-*', provider: 'workers' },
      { pattern: '*', provider: 'simulator' },
    ]);
    expect(config.workers).toMatchObject({ leaseSeconds: 0.5, maxLeases: 5 });
    expect(loadConfig({})).toMatchObject({
      modelRoutes: [{ pattern: '*', provider: 'simulator' }],
      workers: { leaseSeconds: 30, maxLeases: 3 },
      artifactMaxBytes: 512 * 1_048_576,
    });
  });

  it('turns tracing on only with an OTLP endpoint, and reads the standard OTEL_* variables', () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).tracing).toEqual({
      tracesUrl: 'http://collector:4318/v1/traces',
      headers: {},
      serviceName: 'herald',
    });
    expect(
      loadConfig({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://otel.example/custom',
        OTEL_EXPORTER_OTLP_HEADERS: 'api-key=a%20b, x-team=herald',
        OTEL_SERVICE_NAME: 'herald-eu',
      }).tracing,
    ).toEqual({
      tracesUrl: 'https://otel.example/custom',
      headers: { 'api-key': 'a b', 'x-team': 'herald' },
      serviceName: 'herald-eu',
    });
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing,
    ).toBeUndefined();
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
    expect(() =>
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }),
    ).toThrow(/OTEL_EXPORTER_OTLP_HEADERS must be a comma list/);
  });

  it('reads REDIS_CLUSTER_NODES: cluster mode, a hash-tagged queue prefix, never next to a non-default REDIS_URL', () => {
    const c = loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1:7001' });
    expect(c.redisCluster).toEqual({
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: '127.0.0.1', port: 7001 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(c.queuePrefix).toBe('{herald}');
    expect(
      loadConfig({
        REDIS_CLUSTER_NODES: '127.0.0.1:7000',
        QUEUE_PREFIX: 'app{eu}',
        REDIS_URL: 'redis://127.0.0.1:6379',
      }).queuePrefix,
    ).toBe('app{eu}');
    expect(loadConfig({}).redisCluster).toBeUndefined();
    expect(loadConfig({}).queuePrefix).toBe('herald');
    const refusals: Array<[Record<string, string>, RegExp]> = [
      [
        { REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'herald' },
        /QUEUE_PREFIX must contain a hash tag like \{herald\} with REDIS_CLUSTER_NODES.*\(got "herald"\)/,
      ],
      [
        { REDIS_CLUSTER_NODES: '127.0.0.1:7000', REDIS_URL: 'redis://cache:6379' },
        /set REDIS_URL .* or REDIS_CLUSTER_NODES .*, not both/,
      ],
      [{ REDIS_CLUSTER_NODES: '127.0.0.1:7000,127.0.0.1' }, /REDIS_CLUSTER_NODES entry "127.0.0.1" is not host:port/],
    ];
    for (const [env, message] of refusals) {
      expect(() => loadConfig(env)).toThrow(ConfigError);
      expect(() => loadConfig(env)).toThrow(message);
      try {
        loadConfig(env);
      } catch (err) {
        expect((err as Error).message).not.toContain('\n');
      }
    }
  });

  it('names the kind a value must be before its range when it is not a number at all', () => {
    expect(() => loadConfig({ WEBHOOK_HOST_RATE_LIMIT_PER_SECOND: 'abc' })).toThrow(
      /WEBHOOK_HOST_RATE_LIMIT_PER_SECOND must be an integer \(got "abc"\)/,
    );
    expect(() => loadConfig({ CIRCUIT_FAILURES: 'x' })).toThrow(/CIRCUIT_FAILURES must be an integer/);
    expect(() => loadConfig({ CIRCUIT_FAILURES: '20000' })).toThrow(/CIRCUIT_FAILURES must not be greater than 10000/);
  });

  it('ignores empty variables', () => {
    expect(loadConfig({ PORT: '' }).port).toBe(3000);
  });
});

describe('durations', () => {
  it('parses units', () => {
    expect([
      parseDuration('250ms'),
      parseDuration('5s'),
      parseDuration('1m'),
      parseDuration('2h'),
      parseDuration('1d'),
    ]).toEqual([250, 5_000, 60_000, 7_200_000, 86_400_000]);
  });

  it('refuses bare numbers and junk', () => {
    expect(() => parseDuration('5')).toThrow();
    expect(() => parseSchedule('')).toThrow();
  });

  it('formats back', () => {
    expect([0, 250, 5_000, 60_000, 7_200_000].map(formatDuration)).toEqual(['0ms', '250ms', '5s', '1m', '2h']);
  });
});
