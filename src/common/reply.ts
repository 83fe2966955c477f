import type { FastifyReply } from 'fastify';

/** A response decided by the handler at run time (status included), so it can be stored and replayed. */
export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** Writes the reply as it is: status, headers, and the body as JSON (none when undefined). */
export function send(res: FastifyReply, reply: Reply): void {
  res.status(reply.status).headers(reply.headers ?? {});
  if (reply.body === undefined) {
    void res.send();
    return;
  }
  void res.type('application/json; charset=utf-8').send(JSON.stringify(reply.body));
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
