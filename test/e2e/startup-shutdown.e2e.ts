import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, eventually } from '../support/herald.js';
import { spawnHerald } from '../support/processes.js';
import { startReceiver } from '../support/receiver.js';

describe('start-up and shutdown logs at LOG_LEVEL=info', () => {
  it(
    'prints no Nest wiring before the banner, and ends a SIGTERM with what shutdown handed back, finished and gave back',
    { timeout: 90_000 },
    async () => {
      const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-shutdown-'));
      const db = await createTestDatabase(dataDir);
      const apiKey = `hk_down_${randomBytes(12).toString('hex')}`;
      // Answers slowly, so that at SIGTERM one webhook is on the wire and the next waits for the only place there.
      const receiver = await startReceiver({ respond: () => ({ status: 200, body: 'OK', delayMs: 4_000 }) });
      const herald = await spawnHerald({
        DATA_DIR: dataDir,
        DATABASE_URL: db.url,
        QUEUE_PREFIX: `hs${randomBytes(4).toString('hex')}`,
        BOOTSTRAP_API_KEY: apiKey,
        LOG_LEVEL: 'info',
        WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
        WEBHOOK_CONCURRENCY: '1',
      });
      try {
        const lines = () => herald.output().trim().split('\n');
        const banner = lines().findIndex((l) => l.includes('listening on port'));
        expect(banner).toBeGreaterThanOrEqual(0);
        const beforeBanner = lines().slice(0, banner).join('\n');
        expect(beforeBanner).not.toMatch(
          /Mapped \{|RoutesResolver|RouterExplorer|InstanceLoader|dependencies initialized|NestFactory/,
        );

        const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
        const create = async (body: Record<string, unknown>) => {
          const res = await fetch(`${herald.baseUrl}/v1/videos/generations/async`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ model: 'm', prompt: 'p', ...body }),
          });
          expect(res.status).toBe(202);
          return ((await res.json()) as { task_id: string }).task_id;
        };
        const long = await create({ simulate: { duration_ms: 60_000 } });
        const short: string[] = [];
        for (let i = 0; i < 2; i++)
          short.push(
            await create({ simulate: { duration_ms: 50 }, webhook_url: receiver.url(), webhook_events: ['completed'] }),
          );
        const status = async (id: string) =>
          ((await (await fetch(`${herald.baseUrl}/v1/tasks/${id}`, { headers })).json()) as { status: string }).status;
        await eventually(async () => {
          const done = (await Promise.all(short.map(status))).every((s) => s === 'completed');
          return done && (await status(long)) === 'processing' && receiver.received.length >= 1 ? true : undefined;
        });

        expect(await herald.terminate()).toBe(0);
        const shutdown = lines()
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => typeof l.msg === 'string' && l.msg.startsWith('shutdown: handed back'));
        expect(shutdown).toBeDefined();
        // It arranges one of each; checked as at least one, since which webhook is where at SIGTERM is up to the scheduler.
        for (const field of ['generationHandedBack', 'webhooksFinished', 'webhooksGivenBack'])
          expect(shutdown![field], `${field}\n${herald.output()}`).toBeGreaterThanOrEqual(1);
        expect(shutdown!.msg).toMatch(
          /^shutdown: handed back \d+ generation jobs?, finished \d+ webhook requests? on the wire, gave back \d+ unsent webhook deliver(y|ies) \(\d+ ms\)$/,
        );
      } finally {
        await herald.terminate();
        await receiver.close();
        await db.drop();
      }
    },
  );
});
