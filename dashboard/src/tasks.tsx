import { useState } from 'preact/hooks';
import { age, api, ApiError } from './api';
import { Notice, ProgressBar, Status, usePolling } from './ui';

export interface TaskRow {
  task_id: string;
  status: string;
  kind: string;
  model: string;
  progress: number;
  created_at: string;
  message: string | null;
}

const STATUSES = ['', 'pending', 'processing', 'completed', 'failed', 'cancelled', 'timedout'];

export function TasksPage() {
  const [status, setStatus] = useState('');
  const [kind, setKind] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const [page, setPage] = useState<{ data: TaskRow[]; next_cursor: string | null } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const query = new URLSearchParams({ limit: '20', ...(status ? { status } : {}), ...(kind ? { kind } : {}), ...(cursors.length ? { cursor: cursors[cursors.length - 1] } : {}) });
  usePolling(async () => setPage(await api<{ data: TaskRow[]; next_cursor: string | null }>('GET', `/v1/tasks?${query}`)), 1_000, [query.toString()]);

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
          <caption class="visually-hidden">Tasks, newest first, refreshed every second</caption>
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
        <button type="button" disabled={!page?.next_cursor} onClick={() => page?.next_cursor && setCursors([...cursors, page.next_cursor])}>
          Older
        </button>
      </div>
    </section>
  );
}
