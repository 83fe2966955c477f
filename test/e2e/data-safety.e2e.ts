import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { startHerald } from '../../src/serve.js';
import { runCli } from '../support/cli.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type Receiver } from '../support/receiver.js';

let h: TestHerald;
let receiver: Receiver;

beforeAll(async () => {
  h = await startTestHerald({ WEBHOOK_RETRY_SCHEDULE: '0s,50ms,50ms,50ms', WEBHOOK_TIMEOUT_MS: '1000' });
  receiver = await startReceiver();
});
afterAll(async () => {
  await h?.stop();
  await receiver?.close();
});

const db = () => h.herald.app.get(DataSource);
const p = (n: number) => (h.config.database.type === 'postgres' ? `$${n}` : '?');

async function completedTask(extra: Record<string, unknown> = {}) {
  const res = await h.api('POST', '/v1/videos/generations/async', {
    model: 'minimax-video',
    prompt: 'a lighthouse at dusk',
    webhook_url: receiver.url('/safety'),
    webhook_headers: { Authorization: 'Bearer receiver-secret' },
    webhook_events: ['completed'],
    simulate: { duration_ms: 50 },
    ...extra,
  });
  expect(res.status).toBe(202);
  const id = res.body.task_id as string;
  const [delivery] = await eventually(async () => {
    const list = (
      (await h.api('GET', `/v1/tasks/${id}/deliveries`)).body.data as Array<{
        id: string;
        status: string;
        target: string;
      }>
    ).filter((d) => d.target === 'request');
    return list.length && list.every((d) => d.status === 'succeeded') ? list : undefined;
  });
  return { id, delivery };
}

/** Waits until a delivery is final and answers it with its attempt log. */
async function finished(deliveryId: string) {
  return eventually(async () => {
    const d = (await h.api('GET', `/v1/deliveries/${deliveryId}`)).body;
    return ['pending', 'sending'].includes(d.status) ? undefined : d;
  });
}

describe('webhook header values that cannot be sent', () => {
  it.each([
    ['a line separator', 'a\u2028b'],
    ['an emoji', 'ok \u{1F600}'],
    ['a control character', 'a\u0007b'],
  ])('refuses %s in webhook_headers with a 422 naming the header', async (_what, value) => {
    const res = await h.api('POST', '/v1/videos/generations/async', {
      model: 'm',
      prompt: 'p',
      webhook_url: receiver.url(),
      webhook_headers: { 'X-Foo': value },
    });
    expect(res.status).toBe(422);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({
      code: 'validation_failed',
      errors: [{ field: 'webhook_headers.X-Foo', message: expect.stringContaining('U+00FF') }],
    });
  });

  it('accepts Latin-1 values and sends them as they are', async () => {
    const res = await h.api('POST', '/v1/images/generations/async', {
      model: 'm',
      prompt: 'p',
      webhook_url: receiver.url('/latin1'),
      webhook_headers: { 'X-Name': 'caf\u00e9' },
      webhook_events: ['completed'],
      simulate: { duration_ms: 20 },
    });
    expect(res.status).toBe(202);
    const hook = await eventually(async () => receiver.forTask(res.body.task_id)[0]);
    expect(hook.headers['x-name']).toBe('caf\u00e9');
  });

  it('refuses them on registered endpoints too, on create and on update', async () => {
    const created = await h.api('POST', '/v1/webhooks', { url: receiver.url('/ep'), headers: { 'X-Foo': 'a\u2028b' } });
    expect(created.status).toBe(422);
    expect(created.body.errors).toEqual([{ field: 'headers.X-Foo', message: expect.stringContaining('U+00FF') }]);
    const ok = await h.api('POST', '/v1/webhooks', { url: receiver.url('/ep') });
    expect(ok.status).toBe(201);
    const patched = await h.api('PATCH', `/v1/webhooks/${ok.body.id}`, { headers: { 'X-Foo': '\u{1F600}' } });
    expect(patched.status).toBe(422);
    expect(patched.body.errors).toEqual([{ field: 'headers.X-Foo', message: expect.stringContaining('U+00FF') }]);
    await h.api('DELETE', `/v1/webhooks/${ok.body.id}`);
  });

  it('fails a stored value undici refuses at its first attempt, with the reason in the attempt log', async () => {
    // As a delivery accepted before the rule was enforced: its sealed headers hold a value no request can carry.
    const { delivery } = await completedTask();
    const sealed = h.herald.app.get(SecretBox).encrypt(JSON.stringify({ 'X-Foo': 'a\u2028b' }));
    await db().query(`UPDATE deliveries SET headers_sealed = ${p(1)} WHERE id = ${p(2)}`, [sealed, delivery.id]);
    const again = await h.api('POST', `/v1/deliveries/${delivery.id}/redeliver`);
    expect(again.status).toBe(202);
    const done = await finished(again.body.id);
    expect(done).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error: expect.stringContaining('UND_ERR_INVALID_ARG'),
    });
    expect(done.attempt_log).toEqual([
      expect.objectContaining({ number: 1, outcome: 'failed', error: expect.stringContaining('UND_ERR_INVALID_ARG') }),
    ]);
  });
});

describe('a delivery that cannot be prepared', () => {
  it('ends failed at once when its stored headers do not decrypt, with the reason in its attempt log', async () => {
    const { id, delivery } = await completedTask();
    const before = receiver.forTask(id).length;
    const [{ headers_sealed: sealed }] = await db().query<Array<{ headers_sealed: string }>>(
      `SELECT headers_sealed FROM deliveries WHERE id = ${p(1)}`,
      [delivery.id],
    );
    // Damage the ciphertext (last character of the body), as a value sealed with another key would look.
    const damaged = sealed.slice(0, -2) + (sealed.endsWith('AA') ? 'BB' : 'AA');
    await db().query(`UPDATE deliveries SET headers_sealed = ${p(1)} WHERE id = ${p(2)}`, [damaged, delivery.id]);
    const again = await h.api('POST', `/v1/deliveries/${delivery.id}/redeliver`);
    expect(again.status).toBe(202);
    const done = await finished(again.body.id);
    expect(done).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error: expect.stringContaining('cannot prepare the request'),
    });
    expect(done.attempt_log).toEqual([
      expect.objectContaining({
        number: 1,
        outcome: 'failed',
        error: expect.stringMatching(
          /cannot prepare the request \(stored headers\): the sealed value does not decrypt with this ENCRYPTION_KEY/,
        ),
      }),
    ]);
    // Nothing was sent for it, and it stays failed (no loop back to the queue).
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.forTask(id).length).toBe(before);
    expect((await h.api('GET', `/v1/deliveries/${again.body.id}`)).body).toMatchObject({
      status: 'failed',
      attempts: 1,
    });
  });

  it("ends failed at once when a registered endpoint's secret does not decrypt, and other deliveries go on", async () => {
    const broken = await h.api('POST', '/v1/webhooks', {
      url: receiver.url('/broken-secret'),
      events: ['task.completed'],
    });
    const healthy = await h.api('POST', '/v1/webhooks', { url: receiver.url('/healthy'), events: ['task.completed'] });
    await db().query(`UPDATE webhook_endpoints SET secret_sealed = ${p(1)} WHERE id = ${p(2)}`, [
      'v1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.AAAA',
      broken.body.id,
    ]);
    const test = await h.api('POST', `/v1/webhooks/${broken.body.id}/test`);
    expect(test.status).toBe(202);
    const done = await finished(test.body.id);
    expect(done).toMatchObject({ status: 'failed', attempts: 1 });
    expect(done.attempt_log[0].error).toMatch(
      /cannot prepare the request \(signing secret\): the sealed value does not decrypt/,
    );
    const ok = await h.api('POST', `/v1/webhooks/${healthy.body.id}/test`);
    expect(await finished(ok.body.id)).toMatchObject({ status: 'succeeded' });
    await h.api('DELETE', `/v1/webhooks/${broken.body.id}`);
    await h.api('DELETE', `/v1/webhooks/${healthy.body.id}`);
  });
});

describe('the encryption key check', () => {
  // Starts against the same database and queue prefix as the suite's Herald, with other settings as given.
  const startWith = (env: Record<string, string>) =>
    startHerald(
      loadConfig({
        PORT: '0',
        DATA_DIR: h.dataDir,
        DATABASE_URL:
          h.config.database.type === 'postgres' ? h.config.database.url : `sqlite:${h.config.database.path}`,
        QUEUE_PREFIX: h.config.queuePrefix,
        LOG_LEVEL: 'error',
        WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
        ...env,
      }),
    );

  it('refuses a start with another ENCRYPTION_KEY, or from a new DATA_DIR without one, in one line naming both', async () => {
    await expect(startWith({ ENCRYPTION_KEY: randomBytes(32).toString('base64') })).rejects.toThrow(
      /^ENCRYPTION_KEY is not the key the database .* Set ENCRYPTION_KEY .* DATA_DIR/,
    );
    const fresh = mkdtempSync(path.join(tmpdir(), 'herald-newdir-'));
    try {
      await expect(startWith({ DATA_DIR: fresh })).rejects.toThrow(
        /^ENCRYPTION_KEY is not set and DATA_DIR .* holds no encryption\.key.*no new key was saved/,
      );
      // The refused start left no generated key behind for the next start to pick up.
      expect(existsSync(path.join(fresh, 'encryption.key'))).toBe(false);
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
    // The right key (DATA_DIR's encryption.key) still starts, and the suite's Herald was never disturbed.
    const second = await startWith({ ROLE: 'api' });
    await second.close();
    expect((await h.api('GET', '/v1/tasks?limit=1')).status).toBe(200);
  });

  it('herald serve, keys and migrate refuse the wrong key with one line on stderr and exit 1', async () => {
    const env = {
      DATA_DIR: h.dataDir,
      DATABASE_URL: h.config.database.type === 'postgres' ? h.config.database.url : `sqlite:${h.config.database.path}`,
      REDIS_URL: h.config.redisUrl,
      QUEUE_PREFIX: h.config.queuePrefix,
      PORT: '0',
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    };
    for (const args of [['serve'], ['keys', 'list'], ['migrate']]) {
      const res = await runCli(args, env);
      expect(res.code, args.join(' ')).toBe(1);
      const lines = res.stderr.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(/^herald: ENCRYPTION_KEY is not the key the database .* DATA_DIR/);
    }
    // migrate on a host with no key at all checks nothing and makes no key (it needs none).
    const bare = mkdtempSync(path.join(tmpdir(), 'herald-migrate-'));
    try {
      const res = await runCli(['migrate'], { ...env, DATA_DIR: bare, ENCRYPTION_KEY: '' });
      expect(res.code).toBe(0);
      expect(existsSync(path.join(bare, 'encryption.key'))).toBe(false);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  }, 120_000);

  it('checks a database from before the check value against a stored secret, then records the check', async () => {
    await db().query(`DELETE FROM herald_meta`);
    await expect(startWith({ ENCRYPTION_KEY: randomBytes(32).toString('base64') })).rejects.toThrow(
      /ENCRYPTION_KEY is not the key/,
    );
    expect(await db().query(`SELECT name FROM herald_meta`)).toEqual([]);
    const second = await startWith({ ROLE: 'api' });
    await second.close();
    expect(await db().query(`SELECT name FROM herald_meta`)).toEqual([{ name: 'encryption_key_check' }]);
  });
});
