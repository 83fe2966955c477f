import type { Response } from 'express';

/** A response decided by the handler at run time (status included), so it can be stored and replayed. */
export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * Writes the reply as it is. Not through Express's `res.json`, which also hashes every body for an ETag and checks
 * the request's freshness: these replies are answers to POSTs and decisions made now (and replayed as stored), never
 * conditional GETs, and on the create path those steps cost more than the write itself.
 */
export function send(res: Response, reply: Reply): void {
  for (const [name, value] of Object.entries(reply.headers ?? {})) res.setHeader(name, value);
  res.statusCode = reply.status;
  if (reply.body === undefined) {
    res.end();
    return;
  }
  const json = JSON.stringify(reply.body);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}

export const MAX_PREFER_WAIT_S = 60;

/** The `wait` preference of a `Prefer` header (RFC 7240), clamped to 1–60 s; undefined when absent or unreadable. */
export function preferredWait(prefer: string | undefined): number | undefined {
  if (!prefer) return undefined;
  for (const part of prefer.split(/[,;]/)) {
    const match = /^\s*wait\s*=\s*"?(\d+)"?\s*$/i.exec(part);
    if (match) {
      const seconds = Number(match[1]);
      return seconds >= 1 ? Math.min(seconds, MAX_PREFER_WAIT_S) : undefined;
    }
  }
  return undefined;
}
