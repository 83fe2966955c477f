import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { InjectDataSource } from '@nestjs/typeorm';
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { DataSource, In } from 'typeorm';
import { WebSocket, WebSocketServer } from 'ws';
import type { Principal } from '../auth/api-keys.service.js';
import { Credentials } from '../auth/credentials.js';
import { ErrorCode } from '../common/errors.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { Task } from '../tasks/task.entity.js';
import { formatCursor } from '../tasks/event-cursor.js';
import { parseAfter, parseTaskIds, parseTypes, type StreamFilter } from './stream-filter.js';
import { cursorBeyondLast, TenantStreams, type CloseReason, type StreamConnection } from './tenant-streams.js';

export const WS_PATH = '/v1/events/ws';
const AUTH_TIMEOUT_MS = 5_000;

// Close codes (RFC 6455): 1008 policy (auth, slow reader, revoked key), 1013 try again later (too many streams).
const CLOSES: Record<CloseReason, [number, string]> = {
  slow: [1008, 'slow reader: buffer limit passed'],
  revoked: [1008, 'api key revoked'],
  shutdown: [1001, 'server shutting down'],
};

type ClientMessage =
  | { type: 'auth'; api_key?: unknown }
  | { type: 'subscribe'; task_ids?: unknown; types?: unknown; after?: unknown }
  | { type: 'unsubscribe'; task_ids?: unknown }
  | { type: 'ping' };

/**
 * `GET /v1/events/ws`: a `ws` server in noServer mode on the Node HTTP server's 'upgrade' event, next to Fastify
 * rather than through a Nest gateway: the wire protocol (issue 22: `{type: …}` messages, auth by header before the
 * upgrade or by a first message) is not Nest's `{event, data}` routing, and this needs no further package.
 */
@Injectable()
export class EventsGateway implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('EventsGateway');
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024,
    perMessageDeflate: false,
    clientTracking: true,
  });
  private readonly missed = new WeakMap<WebSocket, number>();
  private pinger: NodeJS.Timeout | undefined;
  private server: Server | undefined;

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly streams: TenantStreams,
    private readonly credentials: Credentials,
    @InjectDataSource() private readonly db: DataSource,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.server = this.adapterHost.httpAdapter?.getHttpServer() as Server | undefined;
    this.server?.on('upgrade', this.onUpgrade);
    // Protocol-level pings keep idle connections open through proxies, and find peers that went away silently.
    // Two pings without an answer (a heartbeat interval each) and the peer is taken as gone.
    this.pinger = setInterval(() => {
      for (const ws of this.wss.clients) {
        const missed = this.missed.get(ws) ?? 0;
        if (missed >= 2) {
          ws.terminate();
          continue;
        }
        this.missed.set(ws, missed + 1);
        ws.ping();
      }
    }, this.config.sseHeartbeatMs);
    this.pinger.unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.pinger);
    this.server?.off('upgrade', this.onUpgrade);
    for (const ws of this.wss.clients) ws.close(...CLOSES.shutdown);
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.upgrade(req, socket, head).catch((err: Error) => {
      this.logger.warn(`upgrade failed: ${err.message}`);
      socket.destroy();
    });
  };

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH)
      return refuse(socket, 404, 'route_not_found', `No WebSocket at ${path}; the event stream is at ${WS_PATH}.`);
    let principal: Principal | null = null;
    if (req.headers.authorization !== undefined) {
      const credential = await this.credentials.tenant(req.headers.authorization);
      if ('refused' in credential)
        return credential.refused === ErrorCode.Forbidden
          ? refuse(socket, 403, ErrorCode.Forbidden, credential.message)
          : refuse(
              socket,
              401,
              ErrorCode.Unauthorized,
              'A valid API key is required: send "Authorization: Bearer <key>".',
            );
      principal = credential.principal;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, principal));
  }

  private connected(ws: WebSocket, principal: Principal | null): void {
    ws.on('pong', () => this.missed.set(ws, 0));
    const session = new WsSession(ws, this.streams, this.credentials, this.db);
    if (principal) session.start(principal);
    else {
      const timer = setTimeout(() => session.authenticationMissing(), AUTH_TIMEOUT_MS);
      ws.once('close', () => clearTimeout(timer));
      session.onAuth = () => clearTimeout(timer);
    }
    ws.on('message', (data, isBinary) => void session.message(isBinary ? null : (data as Buffer).toString()));
    ws.on('close', () => session.closed());
    ws.on('error', () => ws.terminate());
  }
}

/** An HTTP answer on a socket that will not be upgraded: problem+json, then close. */
function refuse(socket: Duplex, status: number, code: string, detail: string): void {
  const title = STATUS_CODES[status] ?? 'Error';
  const body = JSON.stringify({ type: 'about:blank', title, status, detail, code });
  const extra = status === 401 ? 'WWW-Authenticate: Bearer realm="herald"\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}

/** One WebSocket client: its key, the tasks and types it follows, and its connection to the tenant's feed. */
class WsSession {
  onAuth?: () => void;
  private connection: StreamConnection | undefined;
  private principal: Principal | undefined;
  private follow: { taskIds: Set<string> | '*'; types: StreamFilter['types'] } = { taskIds: new Set(), types: null };
  private ended = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly streams: TenantStreams,
    private readonly credentials: Credentials,
    private readonly db: DataSource,
  ) {}

  /** Authenticated by the upgrade's header: messages wait for the stream to be opened. */
  start(principal: Principal): void {
    this.turn = this.authenticated(principal).catch(() => undefined);
  }

  async authenticated(principal: Principal): Promise<void> {
    this.principal = principal;
    this.onAuth?.();
    const connection = await this.streams.open(principal.tenantId, principal.keyId, 'ws', {
      send: (batch) => {
        // The batch's frames, made once for every connection, in one write to the socket: with permessage-deflate
        // off, ws.send would only frame the same bytes again for each connection (and write twice per message).
        // ws writes its own frames straight to the socket as well, so the order of messages is kept.
        const socket = (this.ws as unknown as { _socket?: Duplex })._socket;
        if (this.ws.readyState === WebSocket.OPEN && socket) socket.write(batch.ws);
      },
      buffered: () => this.ws.bufferedAmount,
      close: (reason) => {
        if (reason === 'slow')
          this.error('slow_reader', 'The client did not read fast enough; reconnect and resume with the last cursor.', {
            force: true,
          });
        if (reason === 'revoked') this.error('unauthorized', 'The API key was revoked.', { force: true });
        this.ws.close(...CLOSES[reason]);
        // A client that does not read would never take the close frame: let go of it after a moment.
        setTimeout(() => this.ws.terminate(), 1_000).unref();
      },
    });
    // Gone while the slot was being taken: give it back.
    if (this.ended) return connection?.ended();
    this.connection = connection;
    if (!this.connection) {
      this.error(
        'stream_limit_reached',
        'This API key has too many open streams (STREAM_MAX_CONNECTIONS_PER_KEY, across all API processes).',
      );
      this.ws.close(1013, 'too many streams for this api key');
    }
  }

  authenticationMissing(): void {
    if (this.principal || this.ended) return;
    this.error(
      'unauthorized',
      'Authenticate within 5 s: send {"type":"auth","api_key":"…"} or the Authorization header.',
    );
    this.ws.close(1008, 'authentication required');
  }

  private turn: Promise<void> = Promise.resolve();

  /** Messages are handled one after another, in the order sent (a subscribe right after the auth waits for it). */
  message(text: string | null): Promise<void> {
    return (this.turn = this.turn.then(() => this.handle(text)).catch(() => undefined));
  }

  private async handle(text: string | null): Promise<void> {
    let msg: ClientMessage;
    try {
      msg = JSON.parse(text ?? '') as ClientMessage;
      if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') throw new Error('no type');
    } catch {
      this.error(
        'invalid_message',
        'Messages are JSON text objects with a "type": auth, subscribe, unsubscribe or ping.',
      );
      // Before authentication, any message other than auth ends the connection.
      if (!this.principal) this.ws.close(1008, 'authentication required');
      return;
    }
    if (!this.principal) {
      if (msg.type !== 'auth') {
        this.error(
          'unauthorized',
          'The first message must be {"type":"auth","api_key":"…"} (or send the Authorization header).',
        );
        return void this.ws.close(1008, 'authentication required');
      }
      const key = typeof msg.api_key === 'string' ? msg.api_key : '';
      const credential = await this.credentials.tenant(`Bearer ${key}`);
      if (this.ended) return;
      if ('refused' in credential) {
        if (credential.refused === ErrorCode.Forbidden) this.error(ErrorCode.Forbidden, credential.message);
        else this.error(ErrorCode.Unauthorized, 'That API key is not valid.');
        return void this.ws.close(1008, 'invalid api key');
      }
      await this.authenticated(credential.principal);
      if (this.connection) this.send({ type: 'authenticated' });
      return;
    }
    if (!this.connection || this.connection.closed) return;
    switch (msg.type) {
      case 'ping':
        return this.send({ type: 'pong' });
      case 'auth':
        return this.error('invalid_message', 'Already authenticated.');
      case 'subscribe':
        return this.subscribe(msg);
      case 'unsubscribe':
        return this.unsubscribe(msg);
      default:
        return this.error(
          'invalid_message',
          `Unknown message type ${JSON.stringify((msg as { type: string }).type)}: auth, subscribe, unsubscribe or ping.`,
        );
    }
  }

  private async subscribe(msg: { task_ids?: unknown; types?: unknown; after?: unknown }): Promise<void> {
    const all = msg.task_ids === '*';
    const ids = all ? { taskIds: null, errors: [] } : parseTaskIds(msg.task_ids ?? [], 'task_ids');
    const types = parseTypes(msg.types, 'types');
    const after = parseAfter(msg.after, 'after');
    const errors = [...ids.errors, ...types.errors, ...after.errors];
    if (!all && !Array.isArray(msg.task_ids))
      errors.unshift({ field: 'task_ids', message: 'must be "*" or an array of task ids' });
    const beyond = errors.length
      ? undefined
      : await cursorBeyondLast(this.db, this.principal!.tenantId, after.after, 'after');
    if (beyond) errors.push(beyond);
    if (errors.length) return this.error('validation_failed', `${errors[0].field} ${errors[0].message}`);
    let unknown: string[] = [];
    if (!all && ids.taskIds!.size) {
      // Another tenant's task is answered as unknown, as everywhere (never followed, never told apart from a typo).
      const own = await this.db
        .getRepository(Task)
        .find({ where: { tenantId: this.principal!.tenantId, id: In([...ids.taskIds!]) }, select: { id: true } });
      const known = new Set(own.map((t) => t.id));
      unknown = [...ids.taskIds!].filter((id) => !known.has(id));
      for (const id of unknown) ids.taskIds!.delete(id);
    }
    if (this.ended || !this.connection) return;
    const follow = this.follow;
    if (all || follow.taskIds === '*') follow.taskIds = '*';
    else for (const id of ids.taskIds!) follow.taskIds.add(id);
    follow.types = types.types;
    const cursor = await this.streams.subscribe(this.connection, this.filter(), after.after);
    if (unknown.length) this.error('task_not_found', `No task with id ${unknown.join(', ')}; the others are followed.`);
    this.send({
      type: 'subscribed',
      task_ids: this.taskIdsView(),
      types: follow.types ? [...follow.types] : null,
      cursor: formatCursor(cursor),
    });
  }

  private unsubscribe(msg: { task_ids?: unknown }): void {
    if (msg.task_ids === '*') this.follow.taskIds = new Set();
    else {
      const ids = parseTaskIds(Array.isArray(msg.task_ids) ? msg.task_ids : undefined, 'task_ids');
      if (!Array.isArray(msg.task_ids) || ids.errors.length)
        return this.error('validation_failed', 'task_ids must be "*" or an array of task ids');
      if (this.follow.taskIds === '*')
        return this.error(
          'validation_failed',
          'Following every task: unsubscribe "*" first, then subscribe to the ones wanted.',
        );
      for (const id of ids.taskIds ?? []) this.follow.taskIds.delete(id);
    }
    if (this.connection?.subscription) this.connection.subscription.filter = this.filter();
    this.send({
      type: 'subscribed',
      task_ids: this.taskIdsView(),
      types: this.follow.types ? [...this.follow.types] : null,
      cursor: formatCursor(this.connection?.subscription?.last ?? 0),
    });
  }

  private filter(): StreamFilter {
    const { taskIds, types } = this.follow;
    return { taskIds: taskIds === '*' ? '*' : new Set(taskIds), types };
  }

  private taskIdsView(): string[] | '*' {
    return this.follow.taskIds === '*' ? '*' : [...this.follow.taskIds];
  }

  private send(message: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private error(code: string, detail: string, { force = false } = {}): void {
    if (force || this.ws.readyState === WebSocket.OPEN) this.send({ type: 'error', code, detail });
  }

  closed(): void {
    this.ended = true;
    this.connection?.ended();
  }
}
