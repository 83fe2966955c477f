import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook, WebhookVerificationError } from './verify.js';

export interface ListenOptions {
  port: number;
  host?: string;
  /** whsec_… secret; without one, signatures are reported as unverified. */
  secret?: string;
  /** Forward each request (method, headers, raw body) to this URL and answer with its status. */
  forwardTo?: string;
  /** Answer 500 at this rate (0–1), to watch Herald retry. */
  failRate?: number;
  /** Answer 400 to requests whose signature does not verify. */
  strict?: boolean;
  print?: (line: string) => void;
  random?: () => number;
}

export interface ListenSummary {
  received: number;
  valid: number;
  invalid: number;
  unverified: number;
  simulatedFailures: number;
  duplicates: number;
}

export interface WebhookLine {
  at: Date;
  type: string;
  taskId?: string;
  sequence?: number;
  status?: string;
  attempt: number;
  signature: 'valid' | 'unverified' | { invalid: string };
  answer: number;
}

/** One readable line per webhook: time, type, task, sequence, status, attempt, signature, our answer. */
export function formatLine(l: WebhookLine): string {
  const sig = typeof l.signature === 'string' ? l.signature : `INVALID (${l.signature.invalid})`;
  return [
    l.at.toISOString().slice(11, 23),
    l.type.padEnd(28),
    `task=${l.taskId ?? '-'}`,
    `seq=${l.sequence ?? '-'}`,
    `status=${l.status ?? '-'}`,
    `attempt=${l.attempt}`,
    `signature=${sig}`,
    `→ ${l.answer}`,
  ].join('  ');
}

export function formatSummary(s: ListenSummary): string {
  return `received ${s.received} webhooks: ${s.valid} valid, ${s.invalid} invalid, ${s.unverified} unverified; ${s.simulatedFailures} simulated failures; ${s.duplicates} repeats of an earlier webhook-id`;
}

/** What a body says about itself: Conduit payloads (`webhook_type`, `task_id`) or envelopes (`type`, `data`). */
export function describeBody(body: unknown): Pick<WebhookLine, 'type' | 'taskId' | 'sequence' | 'status'> {
  const b = (body ?? {}) as Record<string, any>;
  if (typeof b.type === 'string' && b.data !== undefined) {
    return { type: b.type, taskId: b.data?.task_id, sequence: undefined, status: b.data?.status };
  }
  return { type: b.webhook_type ?? 'unknown', taskId: b.task_id, sequence: b.sequence, status: b.status };
}

/** A local receiver for development: verifies, prints, optionally forwards or fails on purpose. */
export async function listen(options: ListenOptions): Promise<{ port: number; summary: () => ListenSummary; close: () => Promise<ListenSummary> }> {
  const print = options.print ?? ((line: string) => process.stdout.write(line + '\n'));
  const random = options.random ?? Math.random;
  const seen = new Map<string, number>();
  const summary: ListenSummary = { received: 0, valid: 0, invalid: 0, unverified: 0, simulatedFailures: 0, duplicates: 0 };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      summary.received++;
      const id = String(req.headers['webhook-id'] ?? '');
      const attempt = (seen.get(id) ?? 0) + 1;
      if (id) seen.set(id, attempt);
      if (attempt > 1) summary.duplicates++;
      let body: unknown;
      let signature: WebhookLine['signature'] = 'unverified';
      if (options.secret) {
        try {
          body = verifyWebhook(options.secret, req.headers, raw);
          signature = 'valid';
          summary.valid++;
        } catch (err) {
          signature = { invalid: err instanceof WebhookVerificationError ? err.reason : 'error' };
          summary.invalid++;
        }
      } else {
        summary.unverified++;
      }
      if (body === undefined) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          body = undefined;
        }
      }
      let answer = 200;
      if (options.strict && typeof signature === 'object') answer = 400;
      else if (options.failRate && random() < options.failRate) {
        answer = 500;
        summary.simulatedFailures++;
      } else if (options.forwardTo) {
        answer = await forward(options.forwardTo, req, raw);
      }
      print(formatLine({ at: new Date(), ...describeBody(body), attempt, signature, answer }));
      res.writeHead(answer, { 'content-type': 'text/plain' });
      res.end(answer < 300 ? 'OK' : answer === 500 ? 'simulated failure (herald listen --fail-rate)' : 'rejected');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    summary: () => ({ ...summary }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve({ ...summary }));
      }),
  };
}

async function forward(url: string, req: http.IncomingMessage, raw: Buffer): Promise<number> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === 'string' && !['host', 'content-length', 'connection'].includes(name)) headers[name] = value;
  }
  try {
    const res = await fetch(url, { method: req.method ?? 'POST', headers, body: new Uint8Array(raw), signal: AbortSignal.timeout(30_000), redirect: 'manual' });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 502;
  }
}
