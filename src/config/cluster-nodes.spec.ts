import { describe, expect, it } from 'vitest';
import { hashTagOf, nodeName, parseClusterNodes } from './cluster-nodes.js';

describe('REDIS_CLUSTER_NODES', () => {
  it('reads host:port lists, with an optional scheme and credentials for every node', () => {
    expect(parseClusterNodes('10.0.0.1:7000, 10.0.0.2:7001')).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(parseClusterNodes('rediss://app:p%40ss@cache-0.example.com:6379,cache-1.example.com:6379')).toEqual({
      nodes: [
        { host: 'cache-0.example.com', port: 6379 },
        { host: 'cache-1.example.com', port: 6379 },
      ],
      username: 'app',
      password: 'p@ss',
      tls: true,
    });
    expect(parseClusterNodes('redis://:secret@[::1]:7000').nodes).toEqual([{ host: '::1', port: 7000 }]);
    expect(parseClusterNodes('redis://:secret@[::1]:7000').password).toBe('secret');
  });

  it.each([
    ['127.0.0.1', '"127.0.0.1" is not host:port'],
    ['127.0.0.1:7000,,127.0.0.1:7001', '"" is not host:port'],
    ['127.0.0.1:7000,host:99999', '"host:99999" is not host:port'],
    ['127.0.0.1:7000,bad host:7001', '"bad host:7001" is not host:port'],
    ['http://127.0.0.1:7000', 'must be host:port,host:port'],
  ])('names the malformed entry of %s', (text, message) => {
    expect(() => parseClusterNodes(text)).toThrow(message);
  });

  it('finds the hash tag Redis Cluster hashes a key by', () => {
    expect(hashTagOf('{herald}')).toBe('herald');
    expect(hashTagOf('app{q1}')).toBe('q1');
    expect(hashTagOf('herald')).toBeUndefined();
    expect(hashTagOf('{}herald')).toBeUndefined();
    expect(hashTagOf('herald{')).toBeUndefined();
  });

  it('names nodes, IPv6 in brackets', () => {
    expect(nodeName({ host: '::1', port: 7000 })).toBe('[::1]:7000');
    expect(nodeName({ host: 'h', port: 1 })).toBe('h:1');
  });
});
