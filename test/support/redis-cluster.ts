import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './processes.js';

const run = promisify(execFile);

interface ClusterNodeLine {
  id: string;
  port: number;
  role: 'master' | 'slave';
  masterId: string | undefined;
  failed: boolean;
  slots: Array<[number, number]>;
}

/** `CLUSTER NODES` as rows: who is master, of which slots, and who has failed. */
function parseNodes(text: string): ClusterNodeLine[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, master, , , , , ...slots] = line.split(' ');
      return {
        id,
        port: Number(address.split('@')[0].split(':').at(-1)),
        role: flags.includes('master') ? 'master' : 'slave',
        masterId: master === '-' ? undefined : master,
        failed: flags.includes('fail'),
        slots: slots
          .filter((s) => /^\d/.test(s))
          .map((s) => (s.includes('-') ? (s.split('-').map(Number) as [number, number]) : [Number(s), Number(s)])),
      };
    });
}

/**
 * A private Redis Cluster for fault tests: three masters with one replica each, from `redis-server
 * --cluster-enabled yes` on free ports, joined by `redis-cli --cluster create`. No persistence; a short
 * node timeout so that a killed master's replica takes over within a few seconds.
 */
export async function startRedisCluster(options: { nodeTimeoutMs?: number } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-cluster-'));
  const ports: number[] = [];
  while (ports.length < 6) {
    const port = await freePort();
    // The cluster bus listens on port + 10000: both must be free and distinct from the others'.
    if (port > 55_000 || ports.includes(port) || ports.some((p) => Math.abs(p - port) === 10_000)) continue;
    ports.push(port);
  }
  const children = new Map<number, ChildProcess>();
  const command = async (port: number, ...args: string[]): Promise<unknown> => {
    const c = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
      connectTimeout: 1_000,
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return await c.call(args[0], ...args.slice(1));
    } finally {
      c.disconnect();
    }
  };
  const until = async (check: () => Promise<boolean>, what: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${what} not within ${timeoutMs} ms`);
  };
  const stopAll = async () => {
    await Promise.all(
      [...children.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const nodeDir = path.join(dir, String(port));
      mkdirSync(nodeDir);
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        String(options.nodeTimeoutMs ?? 1_000),
        '--dir',
        nodeDir,
        '--save',
        '',
        '--appendonly',
        'no',
        // A replica takes over only once it has synced; Redis 7 waits 5 s before a diskless sync by default.
        '--repl-diskless-sync-delay',
        '0',
      ];
      children.set(port, spawn('redis-server', args, { stdio: 'ignore' }));
    }
    for (const port of ports)
      await until(async () => (await command(port, 'PING')) === 'PONG', `redis-server on ${port}`);
    await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
      { timeout: 30_000 },
    );
    await until(async () => {
      for (const port of ports) {
        const info = String(await command(port, 'CLUSTER', 'INFO'));
        if (
          !info.includes('cluster_state:ok') ||
          !info.includes('cluster_known_nodes:6') ||
          !info.includes('cluster_slots_ok:16384')
        )
          return false;
      }
      return true;
    }, 'cluster_state:ok on every node');
    // A replica that has not finished its first sync refuses to fail over (its data counts as too old): a kill
    // before then would leave the slots down for good, so the cluster is ready only when every replica is in sync.
    await until(async () => {
      let replicas = 0;
      for (const port of ports) {
        const info = String(await command(port, 'INFO', 'replication'));
        if (!info.includes('role:slave')) continue;
        if (!info.includes('master_link_status:up') || !info.includes('master_sync_in_progress:0')) return false;
        replicas++;
      }
      return replicas === 3;
    }, 'every replica in sync');
  } catch (err) {
    await stopAll();
    throw err;
  }

  const alive = () => ports.filter((p) => children.get(p)!.exitCode === null && children.get(p)!.signalCode === null);
  const nodes = async () => parseNodes(String(await command(alive()[0], 'CLUSTER', 'NODES')));
  return {
    ports,
    /** REDIS_CLUSTER_NODES for Herald: every node as a seed. */
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    command,
    /** The master serving the slot `key` hashes to (CLUSTER KEYSLOT, then CLUSTER NODES). */
    async masterOf(key: string): Promise<{ port: number; id: string }> {
      const slot = Number(await command(alive()[0], 'CLUSTER', 'KEYSLOT', key));
      const master = (await nodes()).find(
        (n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b),
      );
      if (!master) throw new Error(`no master serves slot ${slot}`);
      return { port: master.port, id: master.id };
    },
    /** Live nodes with a client in pub/sub mode (CLIENT LIST TYPE pubsub): where a subscriber's connection is. */
    async subscriberPorts(): Promise<number[]> {
      const ports: number[] = [];
      for (const port of alive())
        if (String(await command(port, 'CLIENT', 'LIST', 'TYPE', 'pubsub')).trim()) ports.push(port);
      return ports;
    },
    /** kill -9 of one node. */
    async kill(port: number): Promise<void> {
      const child = children.get(port)!;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    /** Waits until another node serves `key`'s slot and every live node reports cluster_state:ok. */
    async waitFailover(key: string, formerPort: number, timeoutMs = 30_000): Promise<{ port: number; ms: number }> {
      const t0 = Date.now();
      let promoted = 0;
      await until(
        async () => {
          promoted = (await this.masterOf(key)).port;
          if (promoted === formerPort) return false;
          for (const port of alive())
            if (!String(await command(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
          return true;
        },
        `failover of the master on ${formerPort}`,
        timeoutMs,
      );
      return { port: promoted, ms: Date.now() - t0 };
    },
    stop: stopAll,
  };
}

export type RedisClusterHandle = Awaited<ReturnType<typeof startRedisCluster>>;
