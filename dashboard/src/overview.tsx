import { useState } from 'preact/hooks';
import { api } from './api';
import { DeliveriesChart, type MinuteBucket } from './chart';
import { usePolling } from './ui';

type QueueCounts = Record<string, number> | null;

interface Overview {
  deliveries_per_minute: MinuteBucket[];
  success_rate: number | null;
  deliveries_last_hour: { succeeded: number; failed: number };
  pending_deliveries: number;
  failing_endpoints: Array<{
    id: string;
    url: string;
    status: string;
    disabled_reason: string | null;
    failing_since: string | null;
  }>;
  queues: { generation: QueueCounts; webhooks: QueueCounts };
}

const STATES: Array<[state: string, label: string]> = [
  ['waiting', 'Waiting'],
  ['active', 'Active'],
  ['delayed', 'Delayed (retry later)'],
  ['failed', 'Failed'],
];

/** Job counts per queue state, one column per queue; a queue Redis could not count shows as unavailable. */
function QueueTable({ queues }: { queues: Overview['queues'] }) {
  const cell = (q: QueueCounts, state: string) => (q ? (q[state] ?? 0) : '—');
  return (
    <div class="table-scroll">
      <table class="queues">
        <caption class="visually-hidden">Jobs in each queue by state</caption>
        <thead>
          <tr>
            <th scope="col">Jobs</th>
            <th scope="col">Generation</th>
            <th scope="col">Webhooks</th>
          </tr>
        </thead>
        <tbody>
          {STATES.map(([state, label]) => (
            <tr key={state}>
              <th scope="row">{label}</th>
              <td>{cell(queues.generation, state)}</td>
              <td>{cell(queues.webhooks, state)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function OverviewPage() {
  const [data, setData] = useState<Overview | null>(null);
  usePolling(async () => setData(await api<Overview>('GET', '/v1/overview')), 5_000, []);
  if (!data) return <p>Loading…</p>;
  const perMinuteNow = data.deliveries_per_minute.at(-1);
  const unavailable = !data.queues.generation || !data.queues.webhooks;
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div class="cards">
        <div class="card">
          <h2>Deliveries this minute</h2>
          <p class="big">{perMinuteNow ? perMinuteNow.succeeded + perMinuteNow.failed : 0}</p>
        </div>
        <div class="card">
          <h2>Success rate (1 h)</h2>
          <p class="big">{data.success_rate === null ? '—' : `${(data.success_rate * 100).toFixed(1)}%`}</p>
          <p>
            {data.deliveries_last_hour.succeeded} ok · {data.deliveries_last_hour.failed} failed
          </p>
        </div>
        <div class="card wide" role="group" aria-labelledby="queues-title">
          <h2 id="queues-title">Queues</h2>
          <QueueTable queues={data.queues} />
          <p class="hint">
            Deliveries pending: {data.pending_deliveries}
            {unavailable ? ' · a queue could not be counted (is Redis reachable?)' : ''}
          </p>
        </div>
        <div class="card">
          <h2>Failing endpoints</h2>
          <p class="big">{data.failing_endpoints.length}</p>
        </div>
      </div>
      <DeliveriesChart buckets={data.deliveries_per_minute} />
      {data.failing_endpoints.length > 0 && (
        <>
          <h2>Failing endpoints</h2>
          <ul>
            {data.failing_endpoints.map((e) => (
              <li key={e.id}>
                <a href="#/endpoints">{e.url}</a> —{' '}
                {e.status === 'disabled' ? `disabled: ${e.disabled_reason}` : `failing since ${e.failing_since}`}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
