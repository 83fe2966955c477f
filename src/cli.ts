#!/usr/bin/env node
import 'reflect-metadata';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ApiKeysService } from './auth/api-keys.service.js';
import { WorkerTokensService } from './auth/worker-tokens.service.js';
import { Metrics } from './observability/metrics.js';
import { WorkerRegistry } from './workers/worker-registry.js';
import { ConfigError, HeraldConfig, loadConfig, ROLES } from './config/config.js';
import { ensureEncryptionKey } from './crypto/key-check.js';
import { SecretBox } from './crypto/secret-box.js';
import { dataSourceOptions, openDatabase, runMigrations } from './database/data-source.js';
import { ENTITIES } from './entities.js';
import { UnitOfWork } from './database/unit-of-work.js';
import { formatSummary, listen, parseSecrets, type ListenSecret } from './receiver/listen.js';
import { startHerald } from './serve.js';
import { parseWorkerCommand, runWorkerCommand } from './worker-sdk/command.js';

const USAGE = `Usage: herald <command> [options]

Commands:
  serve [--role all|api|worker] [--port N]   start Herald (what \`npm start\` runs)
  migrate                                    apply database migrations and exit
  keys create --tenant NAME [--label L]      create an API key; the key alone is the last line of output
  keys create --worker [--label L]           create a worker token (for /v1/worker/*); the token alone is the last line
  keys list                                  list API keys and worker tokens (prefixes only)
  keys revoke ID                             revoke an API key or a worker token
  workers list                               workers seen: id, label, models, leases held, last seen
  listen [--port 4000] [--secret [label=]whsec_…]… [--forward-to URL] [--fail-rate 0.2] [--strict]
                                             a local webhook receiver that verifies and prints each event;
                                             repeat --secret (or comma-separate) for the tenant secret and
                                             each registered endpoint's own secret
  worker --url U --token T --models M[,M2…] --module ./gen.mjs [--concurrency N] [--kinds video,image]
                                             pull jobs from Herald and run the module's default export on each

Configuration comes from the environment (and ./.env if present); see README.md.`;

function fail(message: string): never {
  process.stderr.write(`herald: ${message}\n`);
  process.exit(1);
}

function config(overrides: Record<string, string | undefined> = {}): HeraldConfig {
  try {
    return loadConfig({
      ...process.env,
      ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)),
    });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

interface Services {
  keys: ApiKeysService;
  workerTokens: WorkerTokensService;
  workers: WorkerRegistry;
}

async function withKeys<T>(work: (keys: ApiKeysService, services: Services) => Promise<T>): Promise<T> {
  const cfg = config();
  const ds = await openDatabase(dataSourceOptions(cfg, ENTITIES), { migrate: true });
  try {
    const uow = new UnitOfWork(ds);
    const keys = new ApiKeysService(ds, uow, new SecretBox((await ensureEncryptionKey(cfg, ds))!));
    return await work(keys, {
      keys,
      workerTokens: new WorkerTokensService(ds, uow),
      workers: new WorkerRegistry(ds, uow, new Metrics()),
    });
  } finally {
    await ds.destroy();
  }
}

async function main(argv: string[]): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const [command, sub, ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({
        args: argv.slice(1),
        options: { role: { type: 'string' }, port: { type: 'string' } },
      });
      if (values.role && !(ROLES as readonly string[]).includes(values.role))
        fail(`--role must be one of ${ROLES.join(', ')}`);
      const cfg = config({ ROLE: values.role, PORT: values.port });
      const herald = await startHerald(cfg, {
        printKey: (key) =>
          process.stdout.write(
            `\nCreated the first API key (tenant "default"). It is shown only this once; keep it:\n\n  ${key}\n\n` +
              `Try: curl -H "Authorization: Bearer ${key}" http://localhost:${cfg.port}/v1/tasks\n\n`,
          ),
      });
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => {
          // A second signal while draining exits at once.
          process.once(signal, () => process.exit(1));
          herald.close().then(
            () => process.exit(0),
            () => process.exit(1),
          );
        });
      }
      return;
    }
    case 'listen': {
      const { values } = parseArgs({
        args: argv.slice(1),
        options: {
          port: { type: 'string' },
          host: { type: 'string' },
          secret: { type: 'string', multiple: true },
          'forward-to': { type: 'string' },
          'fail-rate': { type: 'string' },
          strict: { type: 'boolean' },
        },
      });
      const port = Number(values.port ?? 4000);
      const failRate = Number(values['fail-rate'] ?? 0);
      if (!Number.isInteger(port) || port < 0 || port > 65535) fail('--port must be a port number');
      if (!(failRate >= 0 && failRate <= 1)) fail('--fail-rate must be between 0 and 1');
      if (values['forward-to'] && !/^https?:\/\//.test(values['forward-to']))
        fail('--forward-to must be an http(s) URL');
      let secrets: ListenSecret[] = [];
      try {
        secrets = parseSecrets(
          values.secret?.length
            ? values.secret
            : [process.env.HERALD_WEBHOOK_SECRETS ?? '', process.env.HERALD_WEBHOOK_SECRET ?? ''],
        );
      } catch (err) {
        fail((err as Error).message);
      }
      const verifying =
        secrets.length === 0
          ? 'no --secret: signatures unverified'
          : secrets.length === 1
            ? 'verifying signatures'
            : `verifying signatures with ${secrets.length} secrets (${secrets.map((s) => s.label).join(', ')})`;
      const receiver = await listen({
        port,
        host: values.host,
        secrets,
        forwardTo: values['forward-to'],
        failRate,
        strict: values.strict,
      });
      process.stdout.write(
        `herald listen: receiving on http://${values.host ?? '127.0.0.1'}:${receiver.port}/ — ${verifying}` +
          `${values['forward-to'] ? `, forwarding to ${values['forward-to']}` : ''}${failRate ? `, failing ${Math.round(failRate * 100)}% on purpose` : ''}. Ctrl-C to stop.\n`,
      );
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => {
          void receiver.close().then((summary) => {
            process.stdout.write(`\n${formatSummary(summary)}\n`);
            process.exit(0);
          });
        });
      }
      return;
    }
    case 'worker': {
      const command = parseWorkerCommand(argv.slice(1), process.env);
      if (typeof command === 'string') fail(command);
      await runWorkerCommand(command);
      return;
    }
    case 'migrate': {
      const cfg = config();
      const ds = await openDatabase(dataSourceOptions(cfg), { migrate: false });
      let applied: string[];
      try {
        applied = await runMigrations(ds);
        // Checked when this host has a key (none is made here: migrating needs none), so a wrong one shows now.
        await ensureEncryptionKey(cfg, ds, { generate: false });
      } finally {
        await ds.destroy();
      }
      process.stdout.write(applied.length ? `Applied ${applied.join(', ')}\n` : 'Database is up to date\n');
      return;
    }
    case 'keys': {
      if (sub === 'create') {
        const { values } = parseArgs({
          args: rest,
          options: { tenant: { type: 'string' }, label: { type: 'string' }, worker: { type: 'boolean' } },
        });
        if (values.worker) {
          if (values.tenant) fail('keys create --worker takes no --tenant: worker tokens serve every tenant');
          const created = await withKeys((_, s) => s.workerTokens.create(values.label));
          process.stdout.write(
            `Created worker token ${created.id} (valid only on /v1/worker/*). It is shown only once:\n${created.token}\n`,
          );
          return;
        }
        if (!values.tenant || !/^[A-Za-z0-9_.-]{1,100}$/.test(values.tenant))
          fail('keys create needs --tenant NAME (letters, digits, _ . -)');
        const created = await withKeys((keys) => keys.createKey(values.tenant!, values.label));
        process.stdout.write(
          `Created key ${created.id} for tenant "${created.tenant}". It is shown only once:\n${created.key}\n`,
        );
        return;
      }
      if (sub === 'list') {
        const [list, tokens] = await withKeys(
          async (keys, s) => [await keys.listKeys(), await s.workerTokens.list()] as const,
        );
        for (const k of [...list, ...tokens.map((t) => ({ ...t, tenant: '(worker)' }))]) {
          process.stdout.write(
            `${k.id}  ${k.tenant.padEnd(16)} ${k.prefix}…  ${k.label ?? ''}  created ${k.createdAt.toISOString()}${k.revokedAt ? `  REVOKED ${k.revokedAt.toISOString()}` : ''}\n`,
          );
        }
        if (!list.length && !tokens.length)
          process.stdout.write('No API keys yet. Create one with: herald keys create --tenant NAME\n');
        return;
      }
      if (sub === 'revoke') {
        if (!rest[0]) fail('keys revoke needs the key id (see herald keys list)');
        const revoked = await withKeys(
          async (keys, s) => (await keys.revokeKey(rest[0])) || (await s.workerTokens.revoke(rest[0])),
        );
        if (!revoked) fail(`no active key with id ${rest[0]}`);
        process.stdout.write(`Revoked ${rest[0]}\n`);
        return;
      }
      fail(`unknown keys command "${sub ?? ''}"\n\n${USAGE}`);
    }
    // falls through: fail() never returns
    case 'workers': {
      if (sub !== 'list') fail(`unknown workers command "${sub ?? ''}"\n\n${USAGE}`);
      const workers = await withKeys((_, s) => s.workers.list());
      for (const w of workers) {
        process.stdout.write(
          `${w.id}  ${(w.label ?? '-').padEnd(12)} models ${w.models.join(',')}  kinds ${w.kinds.join(',')}  leases ${w.leases_held}  last seen ${w.last_seen_at}${w.online ? '' : '  (offline)'}\n`,
        );
      }
      if (!workers.length)
        process.stdout.write('No worker has asked for jobs yet. Create a token with: herald keys create --worker\n');
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return;
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: Error) => fail(err.message));
