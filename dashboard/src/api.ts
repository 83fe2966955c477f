const KEY = 'herald.apiKey';

export interface Problem {
  status: number;
  code: string;
  detail: string;
  errors?: Array<{ field: string; message: string }>;
}

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

/** The API key lives in this tab's session only: closing the tab signs out. */
export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key: string) => sessionStorage.setItem(KEY, key),
  signOut: () => {
    sessionStorage.removeItem(KEY);
    location.hash = '#/';
    location.reload();
  },
};

/** A JSON API call with the session's key (or `key`); `signal` cancels it when the page asking is gone. */
export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  { key = session.key(), signal }: { key?: string | null; signal?: AbortSignal } = {},
): Promise<T> {
  const res = await fetch(path, {
    method,
    signal,
    headers: {
      authorization: `Bearer ${key ?? ''}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data: unknown = text ? JSON.parse(text) : undefined;
  if (!res.ok)
    throw new ApiError((data as Problem | undefined) ?? { status: res.status, code: 'error', detail: res.statusText });
  return data as T;
}

/**
 * Server-Sent Events over fetch, because EventSource cannot send the Authorization header. Calls `onEvent`
 * for each event until the stream ends or `signal` aborts.
 */
export async function streamEvents<E>(
  path: string,
  onEvent: (type: string, data: E) => void,
  signal: AbortSignal,
  onOpen?: () => void,
): Promise<void> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${session.key() ?? ''}` }, signal });
  if (!res.ok || !res.body) return;
  onOpen?.();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let type = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) onEvent(type, JSON.parse(data) as E);
    }
  }
}

// Each view names the fields it reads of the events it listens to.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type TenantListener = (type: string, event: any) => void;
const tenantListeners = new Set<TenantListener>();
let tenantStream: Promise<void> | undefined;

/**
 * The tenant's events, live, for every view of this tab over one connection (`/v1/events/stream`): opened on the
 * first listener, resumed from the last cursor after a drop, so a view sees each event once. Resolves once the
 * stream is open; events from then on reach `listener` until the returned function is called.
 */
export function onTenantEvents(listener: TenantListener): { open: Promise<void>; stop: () => void } {
  tenantListeners.add(listener);
  tenantStream ??= new Promise<void>((opened) => {
    let last = '';
    const connect = (): void => {
      const path = `/v1/events/stream${last ? `?after=${last}` : ''}`;
      void streamEvents<{ cursor?: string }>(
        path,
        (type, e) => {
          last = e.cursor ?? last;
          for (const l of tenantListeners) l(type, e);
        },
        new AbortController().signal,
        opened,
      )
        .catch(() => undefined)
        .finally(() => {
          // Refused or dropped: views still load what they can (opened), and the stream is tried again.
          opened();
          setTimeout(connect, 2_000);
        });
    };
    connect();
  });
  return { open: tenantStream, stop: () => tenantListeners.delete(listener) };
}

export function age(iso: string | null | undefined): string {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
