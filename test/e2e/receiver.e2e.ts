import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeader } from '../../src/webhooks/signature.js';
import { CLI } from '../support/cli.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { freePort } from '../support/processes.js';

let h: TestHerald;
let secret: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  h = await startTestHerald();
  secret = (await h.api('GET', '/v1/webhooks/secret')).body.secret;
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await h?.stop();
});

/** Starts a process and collects its stdout; resolves once `ready` appears in it. */
async function start(args: string[], env: Record<string, string>, ready: string) {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  await eventually(async () => (out.includes(ready) ? true : undefined), { timeoutMs: 15_000 });
  return { child, output: () => out };
}

describe('herald listen', () => {
  it('receives real deliveries, verifies each, prints one line per event, and sums up on Ctrl-C', async () => {
    const port = await freePort();
    const listener = await start([CLI, 'listen', '--port', String(port), '--secret', secret], {}, 'receiving on');
    const created = await h.api('POST', '/v1/videos/generations/async', {
      model: 'm',
      prompt: 'p',
      webhook_url: `http://127.0.0.1:${port}/hook`,
      simulate: { duration_ms: 300 },
    });
    const id = created.body.task_id as string;
    await eventually(async () => (listener.output().includes('video_generation_completed') ? true : undefined));
    const lines = listener
      .output()
      .split('\n')
      .filter((l) => l.includes(`task=${id}`));
    expect(lines.some((l) => l.includes('video_generation_progress') && l.includes('status=processing'))).toBe(true);
    const done = lines.find((l) => l.includes('video_generation_completed'))!;
    expect(done).toMatch(/seq=\d+/);
    expect(done).toContain('status=completed');
    expect(done).toContain('attempt=1');
    expect(done).toContain('signature=valid');
    // A forged request is reported as invalid.
    await fetch(`http://127.0.0.1:${port}/hook`, {
      method: 'POST',
      headers: {
        'webhook-id': 'x',
        'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
        'webhook-signature': 'v1,Zm9yZ2Vk',
      },
      body: '{}',
    });
    await eventually(async () => (listener.output().includes('INVALID (invalid_signature)') ? true : undefined));

    const exited = new Promise((r) => listener.child.once('exit', r));
    listener.child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(listener.output()).toMatch(/received \d+ webhooks: \d+ valid, 1 invalid/);
  });

  it('verifies webhook_url deliveries (tenant secret) and a registered endpoint’s (its own secret) with one listener, naming the secret', async () => {
    const port = await freePort();
    const endpoint = (
      await h.api('POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/endpoint`, events: ['task.completed'] })
    ).body as { id: string; secret: string };
    expect(endpoint.secret).not.toBe(secret);
    try {
      // Repeated and comma-separated forms alike.
      const listener = await start(
        [
          CLI,
          'listen',
          '--port',
          String(port),
          '--secret',
          `tenant=${secret}`,
          '--secret',
          `orders=${endpoint.secret},${secret}`,
        ],
        {},
        'receiving on',
      );
      expect(listener.output()).toContain('verifying signatures with 2 secrets (tenant, orders)');
      const created = await h.api('POST', '/v1/videos/generations/async', {
        model: 'm',
        prompt: 'p',
        webhook_url: `http://127.0.0.1:${port}/hook`,
        webhook_events: ['completed'],
        simulate: { duration_ms: 100 },
      });
      const id = created.body.task_id as string;
      const line = (type: string) =>
        listener
          .output()
          .split('\n')
          .find((l) => l.includes(type) && l.includes(`task=${id}`));
      await eventually(async () => (line('video_generation_completed') && line('task.completed') ? true : undefined));
      expect(line('video_generation_completed')).toContain('signature=valid (tenant)');
      expect(line('task.completed')).toContain('signature=valid (orders)');
      expect(listener.output()).not.toContain('INVALID');

      const exited = new Promise((r) => listener.child.once('exit', r));
      listener.child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(listener.output()).toMatch(/2 valid \(tenant: 1, orders: 1\), 0 invalid/);
    } finally {
      await h.api('DELETE', `/v1/webhooks/${endpoint.id}`);
    }
  });

  it('with only the tenant secret, marks an endpoint’s delivery INVALID and says which secret it needs', async () => {
    const port = await freePort();
    const endpoint = (
      await h.api('POST', '/v1/webhooks', { url: `http://127.0.0.1:${port}/endpoint`, events: ['task.completed'] })
    ).body as { id: string };
    try {
      const listener = await start(
        [CLI, 'listen', '--port', String(port)],
        { HERALD_WEBHOOK_SECRET: secret },
        'receiving on',
      );
      await h.api('POST', '/v1/images/generations/async', { model: 'm', prompt: 'p', simulate: { duration_ms: 0 } });
      await eventually(async () => (listener.output().includes('INVALID (invalid_signature)') ? true : undefined));
      expect(listener.output()).toContain("a registered endpoint's with its own secret");
    } finally {
      await h.api('DELETE', `/v1/webhooks/${endpoint.id}`);
    }
  });

  it('fails on purpose with --fail-rate so Herald’s retries can be watched', async () => {
    const port = await freePort();
    const listener = await start(
      [CLI, 'listen', '--port', String(port), '--secret', secret, '--fail-rate', '1'],
      {},
      'receiving on',
    );
    await h.api('POST', '/v1/images/generations/async', {
      model: 'm',
      prompt: 'p',
      webhook_url: `http://127.0.0.1:${port}/hook`,
      webhook_events: ['completed'],
      simulate: { duration_ms: 0 },
      webhook_retry: { max_attempts: 2, schedule: ['0s', '50ms'] },
    });
    await eventually(async () => (listener.output().includes('attempt=2') ? true : undefined));
    expect(listener.output()).toContain('→ 500');
  });
});

describe.each([
  ['plain Node', 'examples/node-receiver.mjs', 'node receiver listening'],
  ['Express', 'examples/express-receiver.mjs', 'express receiver listening'],
])('example receiver: %s', (_, file, ready) => {
  it('accepts a real signed delivery with the right Authorization, and refuses a wrong header (401) or signature (400)', async () => {
    const port = await freePort();
    const example = await start(
      [path.resolve(file)],
      { PORT: String(port), WEBHOOK_SECRET: 'your-webhook-secret', HERALD_WEBHOOK_SECRET: secret },
      ready,
    );
    const url = `http://127.0.0.1:${port}/webhooks/video-complete`;
    const created = await h.api('POST', '/v1/videos/generations/async', {
      model: 'minimax-video',
      prompt: 'p',
      webhook_url: url,
      webhook_headers: { Authorization: 'Bearer your-webhook-secret' },
      simulate: { duration_ms: 200 },
    });
    const id = created.body.task_id as string;
    await eventually(async () => (example.output().includes(`completed ${id}`) ? true : undefined));
    expect(example.output()).toContain(`progress ${id}`);
    // The receiver prints before it answers, so Herald records the 2xx a moment later.
    await eventually(async () => {
      const deliveries = (await h.api('GET', `/v1/tasks/${id}/deliveries`)).body.data as Array<{ status: string }>;
      return deliveries.length > 0 && deliveries.every((d) => d.status === 'succeeded' || d.status === 'superseded')
        ? true
        : undefined;
    });

    const body = JSON.stringify({ task_id: 'x', status: 'completed', sequence: 1 });
    const ts = Math.floor(Date.now() / 1000);
    const signed = {
      'content-type': 'application/json',
      'webhook-id': 'manual-1',
      'webhook-timestamp': String(ts),
      'webhook-signature': signatureHeader([secret], 'manual-1', ts, body),
    };
    expect(
      (await fetch(url, { method: 'POST', headers: { ...signed, authorization: 'Bearer wrong' }, body })).status,
    ).toBe(401);
    expect(
      (
        await fetch(url, {
          method: 'POST',
          headers: { ...signed, authorization: 'Bearer your-webhook-secret', 'webhook-signature': 'v1,AAAA' },
          body,
        })
      ).status,
    ).toBe(400);
    const first = await fetch(url, {
      method: 'POST',
      headers: { ...signed, authorization: 'Bearer your-webhook-secret' },
      body,
    });
    expect(await first.text()).toBe('OK');
    const repeat = await fetch(url, {
      method: 'POST',
      headers: { ...signed, authorization: 'Bearer your-webhook-secret' },
      body,
    });
    expect(await repeat.text()).toBe('duplicate');
  });
});
