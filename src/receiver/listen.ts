import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { matchWebhook, WebhookVerificationError } from './verify.js';

/** A secret to verify with, and how the output names it. */
export interface ListenSecret {
  label: string;
  secret: string;
}

const LABELLED = /^([^=,\s]+)=(whsec_\S+)$/;
const SECRET = /^(whsec_)?[A-Za-z0-9+/]+={0,2}$/;

/**
 * `--secret` values into the secrets to try, in order: each value may hold several, comma-separated, and each may
 * be named `label=whsec_…`. An unnamed one is called by its place and last four characters (`#2 …x9Qk`), so the
 * output never shows a whole secret. Throws with a message for the command line on anything else.
 */
export function parseSecrets(values: readonly string[]): ListenSecret[] {
  const items = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  const secrets: ListenSecret[] = [];
  for (const item of items) {
    const named = LABELLED.exec(item);
    const secret = named ? named[2] : item;
    if (!SECRET.test(secret))
      throw new Error(
        `--secret "${named ? named[1] + '=…' : '…' + item.slice(-4)}" is not a whsec_… secret (name one with label=whsec_…)`,
      );
    if (secrets.some((s) => s.secret === secret)) continue;
    secrets.push({ label: named ? named[1] : `#${secrets.length + 1} …${secret.slice(-4)}`, secret });
  }
  return secrets;
}

export interface ListenOptions {
  port: number;
  host?: string;
  /** One whsec_… secret (as `secrets: [{ label, secret }]`). */
  secret?: string;
  /**
   * The secrets to verify with: a webhook signed with any one of them is valid, and the line says which when
   * there are several. Without any, signatures are reported as unverified.
   */
  secrets?: ListenSecret[];
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
  /** Valid webhooks per secret label, when verifying with several secrets. */
  validBy?: Record<string, number>;
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
  /** `{ valid: label }` names the secret that matched when there were several. */
  signature: 'valid' | 'unverified' | { valid: string } | { invalid: string };
  answer: number;
}

/** One readable line per webhook: time, type, task, sequence, status, attempt, signature, our answer. */
export function formatLine(l: WebhookLine): string {
  const sig =
    typeof l.signature === 'string'
      ? l.signature
      : 'valid' in l.signature
        ? `valid (${l.signature.valid})`
        : `INVALID (${l.signature.invalid})`;
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
  const by = s.validBy
    ? ` (${Object.entries(s.validBy)
        .map(([label, n]) => `${label}: ${n}`)
        .join(', ')})`
    : '';
  return `received ${s.received} webhooks: ${s.valid} valid${by}, ${s.invalid} invalid, ${s.unverified} unverified; ${s.simulatedFailures} simulated failures; ${s.duplicates} repeats of an earlier webhook-id`;
}

/** What a body says about itself: Conduit payloads (`webhook_type`, `task_id`) or envelopes (`type`, `data`). */
export function describeBody(body: unknown): Pick<WebhookLine, 'type' | 'taskId' | 'sequence' | 'status'> {
  const b = (body ?? {}) as {
    type?: unknown;
    data?: { task_id?: string; status?: string };
    webhook_type?: string;
    task_id?: string;
    sequence?: number;
    status?: string;
  };
  if (typeof b.type === 'string' && b.data !== undefined) {
    return { type: b.type, taskId: b.data?.task_id, sequence: undefined, status: b.data?.status };
  }
  return { type: b.webhook_type ?? 'unknown', taskId: b.task_id, sequence: b.sequence, status: b.status };
}

/** Printed once, at the first signature no secret matches: the usual cause is the other kind of secret. */
export const SECRET_HINT =
  "hint: no --secret matched that signature. A task's webhook_url deliveries are signed with the tenant secret (GET /v1/webhooks/secret); " +
  "a registered endpoint's with its own secret (shown when it was created or rotated). Pass each: --secret tenant=whsec_… --secret orders=whsec_…";

/** A local receiver for development: verifies, prints, optionally forwards or fails on purpose. */
export async function listen(
  options: ListenOptions,
): Promise<{ port: number; summary: () => ListenSummary; close: () => Promise<ListenSummary> }> {
  const print = options.print ?? ((line: string) => process.stdout.write(line + '\n'));
  const random = options.random ?? Math.random;
  const seen = new Map<string, number>();
  const secrets = options.secrets ?? (options.secret ? parseSecrets([options.secret]) : []);
  const summary: ListenSummary = {
    received: 0,
    valid: 0,
    invalid: 0,
    unverified: 0,
    simulatedFailures: 0,
    duplicates: 0,
  };
  if (secrets.length > 1) summary.validBy = Object.fromEntries(secrets.map((s) => [s.label, 0]));
  let hinted = false;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on(
      'end',
      () =>
        void (async () => {
          const raw = Buffer.concat(chunks);
          summary.received++;
          const id = String(req.headers['webhook-id'] ?? '');
          const attempt = (seen.get(id) ?? 0) + 1;
          if (id) seen.set(id, attempt);
          if (attempt > 1) summary.duplicates++;
          let body: unknown;
          let signature: WebhookLine['signature'] = 'unverified';
          if (secrets.length) {
            try {
              const matched = matchWebhook(
                secrets.map((s) => s.secret),
                req.headers,
                raw,
              );
              body = matched.event;
              const label = secrets[matched.secretIndex].label;
              signature = secrets.length > 1 ? { valid: label } : 'valid';
              summary.valid++;
              if (summary.validBy) summary.validBy[label]++;
            } catch (err) {
              signature = { invalid: err instanceof WebhookVerificationError ? err.reason : 'error' };
              summary.invalid++;
              if (signature.invalid === 'invalid_signature' && !hinted) {
                hinted = true;
                print(SECRET_HINT);
              }
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
        })(),
    );
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
    const res = await fetch(url, {
      method: req.method ?? 'POST',
      headers,
      body: new Uint8Array(raw),
      signal: AbortSignal.timeout(30_000),
      redirect: 'manual',
    });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 502;
  }
}
