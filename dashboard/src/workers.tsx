import { useState } from 'preact/hooks';
import { api } from './api';
import { Notice, usePolling } from './ui';

interface WorkerRow {
  id: string;
  label: string | null;
  models: string[];
  kinds: string[];
  leases_held: number;
  last_seen_at: string;
  online: boolean;
}

interface Model {
  id: string;
  provider: string;
  capabilities: { video_generation: boolean; image_generation: boolean };
}

const ago = (iso: string) => {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};

/** The external workers serving this Herald (global, read-only) and the models it offers. */
export function WorkersPage() {
  const [workers, setWorkers] = useState<WorkerRow[] | null>(null);
  const [models, setModels] = useState<Model[]>([]);
  usePolling(
    async () => {
      const [w, m] = await Promise.all([
        api<{ data: WorkerRow[] }>('GET', '/v1/workers'),
        api<{ data: Model[] }>('GET', '/v1/discovery/models'),
      ]);
      setWorkers(w.data);
      setModels(m.data);
    },
    5_000,
    [],
  );
  if (!workers) return <p>Loading…</p>;
  return (
    <section aria-labelledby="workers-title">
      <h1 id="workers-title">Workers</h1>
      {workers.length === 0 ? (
        <Notice>
          No worker has asked for jobs yet. Route models to workers with <code>MODEL_ROUTES</code>, create a token with{' '}
          <code>herald keys create --worker</code> and start one (docs/WORKERS.md).
        </Notice>
      ) : (
        <table>
          <caption class="visually-hidden">Workers, most recently seen first, refreshed every 5 seconds</caption>
          <thead>
            <tr>
              <th scope="col">Worker</th>
              <th scope="col">Label</th>
              <th scope="col">Models</th>
              <th scope="col">Kinds</th>
              <th scope="col">Leases held</th>
              <th scope="col">Last seen</th>
            </tr>
          </thead>
          <tbody>
            {workers.map((w) => (
              <tr key={w.id}>
                <td class="mono">{w.id}</td>
                <td>{w.label ?? '—'}</td>
                <td class="mono">{w.models.join(', ')}</td>
                <td>{w.kinds.join(', ')}</td>
                <td>{w.leases_held}</td>
                <td>
                  <span class={`status status-${w.online ? 'completed' : 'cancelled'}`}>
                    {w.online ? 'online' : 'offline'}
                  </span>{' '}
                  {ago(w.last_seen_at)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Models</h2>
      <table>
        <caption class="visually-hidden">Models offered: configured routes and models online workers serve</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Provider</th>
            <th scope="col">Video</th>
            <th scope="col">Image</th>
          </tr>
        </thead>
        <tbody>
          {models.map((m) => (
            <tr key={m.id}>
              <td class="mono">{m.id}</td>
              <td>{m.provider}</td>
              <td>{m.capabilities.video_generation ? 'yes' : '—'}</td>
              <td>{m.capabilities.image_generation ? 'yes' : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
