import { describe, expect, it } from 'vitest';
import { redactRedisUrl, redisOptionsFromUrl } from './redis-options.js';

describe('Redis URLs', () => {
  it('reads host, port, credentials, db and TLS', () => {
    expect(redisOptionsFromUrl('redis://127.0.0.1:6380/2')).toMatchObject({
      host: '127.0.0.1',
      port: 6380,
      db: 2,
      tls: undefined,
    });
    expect(redisOptionsFromUrl('rediss://user:p%40ss@cache.example.com')).toMatchObject({
      host: 'cache.example.com',
      port: 6379,
      username: 'user',
      password: 'p@ss',
      tls: {},
    });
  });

  it('reads Sentinel URLs', () => {
    expect(redisOptionsFromUrl('redis+sentinel://:secret@s1:26379,s2/mymaster/1')).toMatchObject({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
      ],
      name: 'mymaster',
      password: 'secret',
      db: 1,
    });
  });

  it('reconnects with capped backoff', () => {
    const retry = redisOptionsFromUrl('redis://x').retryStrategy!;
    expect(retry(1)).toBe(400);
    expect(retry(50)).toBe(5_000);
  });

  it('hides passwords in messages', () => {
    expect(redactRedisUrl('redis://user:secret@host:6379/0')).toBe('redis://user:***@host:6379/0');
    expect(redactRedisUrl('redis://host:6379')).toBe('redis://host:6379');
  });
});
