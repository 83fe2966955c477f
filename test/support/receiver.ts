import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedWebhook {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: any;
  at: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
}

/**
 * A real webhook receiver on 127.0.0.1 that checks a custom Authorization header as seeds/001 does, records
 * every request, and answers as `respond` says (default 200).
 */
export async function startReceiver(
  options: { authorization?: string; respond?: (req: ReceivedWebhook, n: number) => Reply } = {},
) {
  const received: ReceivedWebhook[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined;
      }
      const hook: ReceivedWebhook = { path: req.url ?? '/', headers: req.headers, raw, body, at: Date.now() };
      received.push(hook);
      const reply: Reply =
        options.authorization && req.headers.authorization !== options.authorization
          ? { status: 401, body: 'Unauthorized' }
          : (options.respond?.(hook, received.length) ?? { status: 200, body: 'OK' });
      setTimeout(() => {
        res.writeHead(reply.status, reply.headers);
        res.end(reply.body ?? '');
      }, reply.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path = '/webhooks/video-complete') => `http://127.0.0.1:${port}${path}`,
    received,
    forTask: (taskId: string) => received.filter((r) => r.body?.task_id === taskId),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;
