import { useEffect, useRef, useState } from 'preact/hooks';
import { age, api, ApiError, onTenantEvents } from './api';
import { Notice, ProgressBar, Status } from './ui';

interface Task {
  task_id: string;
  status: string;
  progress: number;
  message: string | null;
  kind: string;
  model: string;
  prompt: string;
  error: string | null;
  created_at: string;
  result: { data: ResultItem[] } | null;
  webhook: { url: string } | null;
}
interface Event_ {
  sequence: number;
  type: string;
  created_at: string;
  data: { status: string; progress: number; message: string | null };
}
interface Delivery {
  id: string;
  event_type: string;
  sequence: number;
  target: string;
  url: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
}
interface Attempt {
  number: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  outcome: string;
  response_snippet: string | null;
}

function DeliveryRow({ d, onRedeliver }: { d: Delivery; onRedeliver: () => void }) {
  const [attempts, setAttempts] = useState<Attempt[] | null>(null);
  const toggle = async () =>
    setAttempts(attempts ? null : (await api<{ attempt_log: Attempt[] }>('GET', `/v1/deliveries/${d.id}`)).attempt_log);
  return (
    <>
      <tr>
        <td>
          #{d.sequence} {d.event_type}
        </td>
        <td class="mono">{d.target === 'request' ? 'webhook_url' : `endpoint ${d.target.slice(0, 8)}…`}</td>
        <td>
          <Status value={d.status} />
        </td>
        <td>{d.attempts}</td>
        <td>{d.last_status_code ?? '—'}</td>
        <td>
          <button type="button" aria-expanded={attempts !== null} onClick={toggle}>
            Attempts
          </button>{' '}
          <button type="button" onClick={onRedeliver}>
            Redeliver
          </button>
        </td>
      </tr>
      {attempts && (
        <tr>
          <td colSpan={6}>
            <table class="inner">
              <caption class="visually-hidden">Attempts of delivery {d.id}</caption>
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">Started</th>
                  <th scope="col">Status code</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Error</th>
                  <th scope="col">Response</th>
                </tr>
              </thead>
              <tbody>
                {attempts.map((a) => (
                  <tr key={a.number}>
                    <td>{a.number}</td>
                    <td>{age(a.started_at)}</td>
                    <td>{a.status_code ?? '—'}</td>
                    <td>{a.duration_ms} ms</td>
                    <td>{a.outcome}</td>
                    <td>{a.error ?? ''}</td>
                    <td>
                      <code>{(a.response_snippet ?? '').slice(0, 120)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </td>
        </tr>
      )}
    </>
  );
}

interface ResultItem {
  url?: string;
  b64_json?: string;
  metadata?: { mime_type?: string; resolution?: string };
}

/** The generated files themselves: an image, or a player for a video, with the link below. */
function ResultMedia({ task }: { task: Task }) {
  const items = task.result?.data ?? [];
  return (
    <>
      {items.map((item, i) => {
        const type = item.metadata?.mime_type ?? (task.kind === 'video' ? 'video/mp4' : 'image/png');
        const src = item.url ?? (item.b64_json ? `data:${type};base64,${item.b64_json}` : undefined);
        if (!src) return null;
        const label = `Generated ${task.kind}${items.length > 1 ? ` ${i + 1}` : ''}: ${task.prompt}`;
        return (
          <figure class="result" key={i}>
            {type.startsWith('video/') ? (
              <video controls preload="metadata" src={src} aria-label={label} />
            ) : (
              <img src={src} alt={label} />
            )}
            <figcaption>
              {item.url ? <a href={item.url}>{item.url}</a> : 'Returned inline (b64_json)'}
              {item.metadata?.resolution ? ` · ${item.metadata.resolution}` : ''}
            </figcaption>
          </figure>
        );
      })}
    </>
  );
}

/** One task's page. The router keys it by task id, so each task gets fresh state and its own SSE stream. */
export function TaskPage({ id }: { id: string }) {
  const [task, setTask] = useState<Task | null>(null);
  const [missing, setMissing] = useState<string | null>(null);
  const [events, setEvents] = useState<Event_[]>([]);
  const [deliveries, setDeliveries] = useState<Delivery[]>([]);
  const [notice, setNotice] = useState<{ text: string; kind?: 'error' } | null>(null);
  // Aborted when the page goes: any load still in flight ends with it (the tenant stream is stopped apart).
  const life = useRef<AbortController | null>(null);
  const load = async ({ task = true } = {}) => {
    const signal = life.current?.signal;
    try {
      const [t, d] = await Promise.all([
        task ? api<Task>('GET', `/v1/tasks/${id}`, undefined, { signal }) : undefined,
        api<{ data: Delivery[] }>('GET', `/v1/tasks/${id}/deliveries`, undefined, { signal }),
      ]);
      if (t) setTask(t);
      setDeliveries(d.data);
    } catch (err) {
      if (!signal?.aborted && err instanceof ApiError && err.problem.status === 404) setMissing(err.problem.detail);
    }
  };

  useEffect(() => {
    const abort = (life.current = new AbortController());
    void load();
    const add = (list: Event_[]) =>
      setEvents((all) =>
        [...all, ...list.filter((e) => !all.some((x) => x.sequence === e.sequence))].sort(
          (a, b) => a.sequence - b.sequence,
        ),
      );
    // Live: the tab's one tenant stream (opened first), then the timeline so far; each event refreshes the task.
    const live = onTenantEvents((_, e: Event_ & { task_id: string }) => {
      if (e.task_id !== id) return;
      add([e]);
      void load();
    });
    void live.open
      .then(async () =>
        add((await api<{ data: Event_[] }>('GET', `/v1/tasks/${id}/events`, undefined, { signal: abort.signal })).data),
      )
      .catch(() => undefined);
    // The task changes only with an event; its deliveries' attempts and retries have none in the stream.
    const timer = setInterval(() => void load({ task: false }), 3_000);
    return () => {
      abort.abort();
      live.stop();
      clearInterval(timer);
    };
  }, [id]);

  const act = async (label: string, method: string, path: string) => {
    try {
      await api(method, path);
      setNotice({ text: `${label}: done` });
      await load();
    } catch (err) {
      setNotice({ text: err instanceof ApiError ? err.problem.detail : `${label} failed`, kind: 'error' });
    }
  };
  if (missing)
    return (
      <section>
        <p>
          <a href="#/tasks">← Tasks</a>
        </p>
        <Notice kind="error">{missing}</Notice>
      </section>
    );
  if (!task) return <p>Loading…</p>;
  const base = task.kind === 'video' ? '/v1/videos/generations' : '/v1/images/generations';
  return (
    <section aria-labelledby="task-title">
      <p>
        <a href="#/tasks">← Tasks</a>
      </p>
      <h1 id="task-title">
        Task <span class="mono">{task.task_id}</span>
      </h1>
      <div class="row" aria-live="polite">
        <Status value={task.status} /> <ProgressBar value={task.progress} label="Task progress" />{' '}
        <span>{task.progress}%</span> <span>{task.message}</span>
      </div>
      <dl class="facts">
        <dt>Kind</dt>
        <dd>{task.kind}</dd>
        <dt>Model</dt>
        <dd>{task.model}</dd>
        <dt>Prompt</dt>
        <dd>{task.prompt}</dd>
        <dt>Created</dt>
        <dd>{age(task.created_at)}</dd>
        {task.error && (
          <>
            <dt>Error</dt>
            <dd>{task.error}</dd>
          </>
        )}
      </dl>
      <ResultMedia task={task} />
      <div class="row">
        <button
          type="button"
          disabled={!['pending', 'processing'].includes(task.status)}
          onClick={() => act('Cancel', 'DELETE', `${base}/${id}`)}
        >
          Cancel
        </button>
        <button
          type="button"
          disabled={!['failed', 'timedout'].includes(task.status)}
          onClick={() => act('Retry', 'POST', `${base}/tasks/${id}/retry`)}
        >
          Retry
        </button>
      </div>
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
      <h2>Timeline</h2>
      <ol class="timeline" aria-live="polite">
        {events.map((e) => (
          <li key={e.sequence}>
            <span class="mono">#{e.sequence}</span> <strong>{e.type}</strong> — {e.data.status} {e.data.progress}%{' '}
            {e.data.message ?? ''} <time dateTime={e.created_at}>{new Date(e.created_at).toLocaleTimeString()}</time>
          </li>
        ))}
      </ol>
      <h2>Webhook deliveries</h2>
      {deliveries.length === 0 ? (
        <p>No deliveries{task.webhook ? ' yet' : ': this task has no webhook_url and no endpoint subscribes to it'}.</p>
      ) : (
        <div class="table-scroll">
          <table>
            <caption class="visually-hidden">Webhook deliveries of this task</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Target</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last code</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((d) => (
                <DeliveryRow
                  key={d.id}
                  d={d}
                  onRedeliver={() => act('Redeliver', 'POST', `/v1/deliveries/${d.id}/redeliver`)}
                />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
