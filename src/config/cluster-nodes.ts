/** REDIS_CLUSTER_NODES read: the seed nodes of a Redis Cluster and what every node is reached with. */
export interface RedisClusterTarget {
  nodes: Array<{ host: string; port: number }>;
  username?: string;
  password?: string;
  tls: boolean;
}

/**
 * `host:port,host:port,…`, or with a scheme and credentials once in front, as REDIS_URL writes them:
 * `rediss://user:pass@host:port,host:port` (TLS and a password for every node). IPv6 hosts in brackets.
 */
export function parseClusterNodes(text: string): RedisClusterTarget {
  const match = /^(?:(rediss?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?)?([^/@]*)\/?$/.exec(text.trim());
  if (!match) throw new Error('must be host:port,host:port,… or redis[s]://[user:pass@]host:port,host:port,…');
  const [, scheme, user, pass, list] = match;
  const entries = list.split(',').map((e) => e.trim());
  const nodes = entries.map((entry) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) throw new Error(`entry "${entry}" is not host:port`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  return {
    nodes,
    username: user ? decodeURIComponent(user) : undefined,
    password: pass ? decodeURIComponent(pass) : undefined,
    tls: scheme === 'rediss',
  };
}

/**
 * The hash tag Redis Cluster hashes a key by: what stands between the first `{` and the first `}` after it, when
 * not empty. BullMQ needs every key of a queue in one slot, so in cluster mode the queue prefix must carry one.
 */
export function hashTagOf(key: string): string | undefined {
  const open = key.indexOf('{');
  if (open < 0) return undefined;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : undefined;
}

/** `host:port` of a node, brackets around IPv6, for messages. */
export function nodeName(node: { host: string; port: number }): string {
  return `${node.host.includes(':') ? `[${node.host}]` : node.host}:${node.port}`;
}
