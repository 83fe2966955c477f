import { useEffect, useState } from 'preact/hooks';
import { age, api, ApiError, onTenantEvents } from './api';
import { Notice, ProgressBar, Status } from './ui';

export interface TaskRow {
  task_id: string;
  status: string;
  kind: string;
  model: string;
  progress: number;
  created_at: string;
  updated_at: string;
  message: string | null;
}

const STATUSES = ['', 'pending', 'processing', 'completed', 'failed', 'cancelled', 'timedout'];

export function TasksPage() {
  const [status, setStatus] = useState('');
  const [kind, setKind] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const [page, setPage] = useState<{ data: TaskRow[]; next_cursor: string | null } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const query = new URLSearchParams({
    limit: '20',
    ...(status ? { status } : {}),
    ...(kind ? { kind } : {}),
    ...(cursors.length ? { cursor: cursors[cursors.length - 1] } : {}),
  });
  useLiveTasks(query, !cursors.length, status, setPage);

  const start = async (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.target as HTMLFormElement);
    try {
      const created = await api<{ task_id: string }>('POST', `/v1/${form.get('kind') as string}/generations/async`, {
        model: form.get('model'),
        prompt: form.get('prompt'),
        simulate: { duration_ms: Number(form.get('duration')) * 1000 },
      });
      setNotice(`Started task ${created.task_id}`);
    } catch (err) {
      setNotice(err instanceof ApiError ? err.problem.detail : 'Could not start the task');
    }
  };

  return (
    <section aria-labelledby="tasks-title">
      <h1 id="tasks-title">Tasks</h1>
      <form class="row" onSubmit={start} aria-label="Start a simulated task">
        <label>
          Kind
          <select name="kind">
            <option value="videos">video</option>
            <option value="images">image</option>
          </select>
        </label>
        <label>
          Model <input name="model" value="minimax-video" required />
        </label>
        <label>
          Prompt <input name="prompt" value="A serene mountain landscape with clouds" required />
        </label>
        <label>
          Seconds <input name="duration" type="number" min={0} max={600} value={5} />
        </label>
        <button type="submit">Start simulated task</button>
      </form>
      {notice && <Notice>{notice}</Notice>}
      <div class="row" role="group" aria-label="Filters">
        <label>
          Status
          <select value={status} onChange={(e) => (setStatus((e.target as HTMLSelectElement).value), setCursors([]))}>
            {STATUSES.map((s) => (
              <option value={s}>{s || 'any'}</option>
            ))}
          </select>
        </label>
        <label>
          Kind
          <select value={kind} onChange={(e) => (setKind((e.target as HTMLSelectElement).value), setCursors([]))}>
            <option value="">any</option>
            <option value="video">video</option>
            <option value="image">image</option>
          </select>
        </label>
      </div>
      <div class="table-scroll">
        <table>
          <caption class="visually-hidden">Tasks, newest first, updated live</caption>
          <thead>
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Status</th>
              <th scope="col">Kind</th>
              <th scope="col">Model</th>
              <th scope="col">Progress</th>
              <th scope="col">Age</th>
            </tr>
          </thead>
          <tbody>
            {page?.data.map((t) => (
              <tr key={t.task_id}>
                <td>
                  <a href={`#/tasks/${t.task_id}`} class="mono">
                    {t.task_id.slice(0, 13)}…
                  </a>
                </td>
                <td>
                  <Status value={t.status} />
                </td>
                <td>{t.kind}</td>
                <td>{t.model}</td>
                <td>
                  <ProgressBar value={t.progress} label={`Task ${t.task_id} progress`} /> {t.progress}%
                </td>
                <td>{age(t.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page && page.data.length === 0 && <p>No tasks yet.</p>}
      <div class="row">
        <button type="button" disabled={!cursors.length} onClick={() => setCursors(cursors.slice(0, -1))}>
          Newer
        </button>
        <button
          type="button"
          disabled={!page?.next_cursor}
          onClick={() => page?.next_cursor && setCursors([...cursors, page.next_cursor])}
        >
          Older
        </button>
      </div>
    </section>
  );
}

type Page = { data: TaskRow[]; next_cursor: string | null };
type TenantEvent = {
  task_id: string;
  created_at: string;
  data: { status: string; progress: number; message: string | null };
};

/**
 * The list, live from the tab's one tenant stream instead of polling: read once the stream is open, then each
 * event updates its task's row in place (unless the row is already newer: events that came during a read are
 * applied after it). Only what the rows cannot show by themselves reads the page again (at most every 500 ms): a
 * new task on the first page, or a task entering or leaving the status filter.
 */
function useLiveTasks(query: URLSearchParams, firstPage: boolean, status: string, setPage: (p: Page) => void) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    let page: Page | null = null;
    let pending: Array<[string, TenantEvent]> | null = null; // events during a read
    let again = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const apply = (type: string, e: TenantEvent): boolean => {
      const i = page!.data.findIndex((t) => t.task_id === e.task_id);
      if (i < 0) return firstPage && (type === 'task.queued' || (!!status && e.data.status === status));
      if (status && e.data.status !== status) return true;
      const row = page!.data[i];
      if (Date.parse(e.created_at) < Date.parse(row.updated_at)) return false;
      page = {
        ...page!,
        data: page!.data.map((t, j) =>
          j === i
            ? {
                ...row,
                status: e.data.status,
                progress: e.data.progress,
                message: e.data.message,
                updated_at: e.created_at,
              }
            : t,
        ),
      };
      return false;
    };
    const read = async () => {
      timer = undefined;
      pending = [];
      again = false;
      try {
        page = await api<Page>('GET', `/v1/tasks?${query}`, undefined, { signal: abort.signal });
        for (const [type, e] of pending) again = apply(type, e) || again;
        setPage(page);
      } catch {
        // The stream's next event (or the next change of page) reads again.
      }
      pending = null;
      if (again) readSoon();
    };
    const readSoon = () => {
      if (pending) again = true;
      else if (!timer && !abort.signal.aborted) timer = setTimeout(read, 500);
    };
    const live = onTenantEvents((type, e: TenantEvent) => {
      if (pending) return void pending.push([type, e]);
      if (!page) return;
      if (apply(type, e)) readSoon();
      else setPage(page);
    });
    void live.open.then(() => {
      if (!abort.signal.aborted) void read();
    });
    // The Age column moves on by itself: a re-render, no request.
    const ages = setInterval(() => setTick((n) => n + 1), 5_000);
    return () => {
      abort.abort();
      live.stop();
      clearTimeout(timer);
      clearInterval(ages);
    };
  }, [query.toString()]);
}
