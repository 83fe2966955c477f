import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { JobKind } from './protocol.js';
import { runWorker, type Handler } from './run-worker.js';

export const WORKER_USAGE = `herald worker --url URL --token TOKEN --models M[,M2…] --module ./gen.mjs [--concurrency N] [--kinds video,image] [--worker-id ID]`;

export interface WorkerCommand {
  url: string;
  token: string;
  models: string[];
  kinds?: JobKind[];
  module: string;
  concurrency: number;
  workerId?: string;
}

/** `herald worker`'s flags (HERALD_URL and HERALD_WORKER_TOKEN stand in for --url and --token); a message when they are wrong. */
export function parseWorkerCommand(args: string[], env: Record<string, string | undefined>): WorkerCommand | string {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        models: { type: 'string' },
        kinds: { type: 'string' },
        module: { type: 'string' },
        concurrency: { type: 'string' },
        'worker-id': { type: 'string' },
      },
    }));
  } catch (err) {
    return (err as Error).message;
  }
  const url = values.url ?? env.HERALD_URL;
  const token = values.token ?? env.HERALD_WORKER_TOKEN;
  const list = (s: string | undefined) =>
    (s ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter(Boolean);
  const models = list(values.models);
  const kinds = list(values.kinds);
  const concurrency = Number(values.concurrency ?? 1);
  if (!url || !/^https?:\/\/[^/]/.test(url)) return '--url must be Herald’s http(s) base URL (or set HERALD_URL)';
  if (!token) return '--token is required (or set HERALD_WORKER_TOKEN): create one with `herald keys create --worker`';
  if (!models.length) return '--models needs at least one model id or glob, comma-separated';
  if (kinds.some((k) => k !== 'video' && k !== 'image')) return '--kinds is a comma list of video, image';
  if (!values.module) return '--module is required: a file whose default export is the handler';
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
    return '--concurrency must be a whole number from 1 to 256';
  return {
    url,
    token,
    models,
    ...(kinds.length ? { kinds: kinds as JobKind[] } : {}),
    module: values.module,
    concurrency,
    ...(values['worker-id'] ? { workerId: values['worker-id'] } : {}),
  };
}

/** Runs a worker until SIGTERM/SIGINT: the first stops taking jobs and lets running ones finish; a second hands them back. */
export async function runWorkerCommand(
  command: WorkerCommand,
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const loaded = (await import(pathToFileURL(path.resolve(command.module)).href)) as {
    default?: unknown;
    handler?: unknown;
  };
  const handler = (typeof loaded.default === 'function' ? loaded.default : loaded.handler) as Handler | undefined;
  if (typeof handler !== 'function')
    throw new Error(
      `${command.module} must export the handler as its default export: export default async (job, ctx) => outputs`,
    );
  const worker = runWorker({
    ...command,
    handler,
    log: (level, message) => out.write(`herald worker: ${level === 'info' ? '' : `${level}: `}${message}\n`),
  });
  out.write(
    `herald worker: serving ${command.models.join(', ')} from ${command.url} (concurrency ${command.concurrency})\n`,
  );
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      out.write(
        `herald worker: stopping; ${worker.running} running job(s) may finish (${signal} again hands them back now)\n`,
      );
      process.once(signal, () => void worker.stop({ graceMs: 0 }).then(() => process.exit(1)));
      void worker.stop().then(() => process.exit(0));
    });
  }
  await worker.done;
}
