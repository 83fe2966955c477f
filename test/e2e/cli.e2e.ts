import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

let h: TestHerald;
let env: Record<string, string>;
beforeAll(async () => {
  h = await startTestHerald();
  env = {
    DATA_DIR: h.dataDir,
    DATABASE_URL: h.config.database.type === 'postgres' ? h.config.database.url : `sqlite:${h.config.database.path}`,
  };
});
afterAll(async () => {
  await h?.stop();
});

// Each command is a fresh Node process that loads the whole of Herald: seconds each on a busy 2-core machine.
describe('herald CLI', { timeout: 120_000 }, () => {
  it('creates a key that works at once, lists it by prefix, and revokes it', async () => {
    const created = await runCli(['keys', 'create', '--tenant', 'acme', '--label', 'ci'], env);
    expect(created.code).toBe(0);
    const key = created.stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^hk_[A-Za-z0-9_-]{43}$/);
    const ok = await fetch(`${h.baseUrl}/v1/tasks`, { headers: { authorization: `Bearer ${key}` } });
    expect(ok.status).toBe(200);

    const list = await runCli(['keys', 'list'], env);
    expect(list.stdout).toContain('acme');
    expect(list.stdout).toContain(key.slice(0, 10));
    expect(list.stdout).not.toContain(key);

    const id = created.stdout.match(/Created key (\S+)/)![1];
    expect((await runCli(['keys', 'revoke', id], env)).code).toBe(0);
    // Revocation reaches every process within the auth cache lifetime (5 s).
    await new Promise((r) => setTimeout(r, 5_200));
    expect((await fetch(`${h.baseUrl}/v1/tasks`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
  });

  it('creates a worker token that works only on /v1/worker/*, lists it, shows its worker, and revokes it', async () => {
    const created = await runCli(['keys', 'create', '--worker', '--label', 'gpu-box'], env);
    expect(created.code, created.stderr).toBe(0);
    const token = created.stdout.trim().split('\n').at(-1)!;
    expect(token).toMatch(/^hw_[A-Za-z0-9_-]{43}$/);
    const lease = () =>
      fetch(`${h.baseUrl}/v1/worker/leases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ worker_id: 'gpu-box-1', models: ['flux-dev', 'minimax-*'] }),
      });
    expect((await lease()).status).toBe(200);
    expect((await fetch(`${h.baseUrl}/v1/tasks`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);

    const list = await runCli(['keys', 'list'], env);
    expect(list.stdout).toContain('(worker)');
    expect(list.stdout).toContain(token.slice(0, 10));
    expect(list.stdout).not.toContain(token);
    const workers = await runCli(['workers', 'list'], env);
    expect(workers.stdout).toMatch(
      /gpu-box-1\s+gpu-box\s+models flux-dev,minimax-\*\s+kinds video,image\s+leases 0\s+last seen/,
    );

    const id = created.stdout.match(/Created worker token (\S+)/)![1];
    expect((await runCli(['keys', 'revoke', id], env)).code).toBe(0);
    await new Promise((r) => setTimeout(r, 5_200));
    expect((await lease()).status).toBe(401);
  });

  it('migrates an empty database and reports when there is nothing to do', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-cli-'));
    const first = await runCli(['migrate'], { DATA_DIR: dir });
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('Applied');
    const second = await runCli(['migrate'], { DATA_DIR: dir });
    expect(second.stdout).toContain('up to date');
  });

  it('stops at start-up with one line naming a bad variable', async () => {
    const res = await runCli(['serve'], { PORT: 'abc' });
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain('PORT');
  });

  it('says how to start Redis when it cannot be reached', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-cli-'));
    const res = await runCli(['serve'], { DATA_DIR: dir, REDIS_URL: 'redis://127.0.0.1:1', PORT: '0' });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('Cannot reach Redis at redis://127.0.0.1:1');
    expect(res.stderr).toContain('REDIS_URL');
    expect(res.stderr).toContain('redis-server');
  });

  it('prints usage for an unknown command', async () => {
    const res = await runCli(['frobnicate'], {});
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('Usage: herald');
  });
});

/** Every file under dist/ with its size and modification time, to tell whether a command rebuilt anything. */
function distSnapshot(): string[] {
  const files: string[] = [];
  const visit = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(p);
      else files.push(`${p} ${statSync(p).size} ${statSync(p).mtimeMs}`);
    }
  };
  visit(path.resolve('dist'));
  return files.sort();
}

describe('running the CLI from a checkout', () => {
  it('runs the documented `npm run -s herald -- …` without building or touching dist/', () => {
    const before = distSnapshot();
    const res = spawnSync('npm', ['run', '-s', 'herald', '--', '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(res.status).toBe(0);
    expect(res.stdout.startsWith('Usage: herald')).toBe(true);
    expect(distSnapshot()).toEqual(before);
  });

  it('leaves a fresh dist/ alone when npm runs prepare (npm install), so a running server keeps its files', () => {
    const check = spawnSync(process.execPath, ['scripts/build.mjs', '--check'], { encoding: 'utf8' });
    expect(check.status, 'dist/ is older than the sources: npm run build before these tests').toBe(0);
    const before = distSnapshot();
    const res = spawnSync('npm', ['run', '-s', 'prepare'], { encoding: 'utf8', timeout: 60_000 });
    expect(res.status).toBe(0);
    expect(res.stdout).toContain('not rebuilding');
    expect(distSnapshot()).toEqual(before);
  });
});
