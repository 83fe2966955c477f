import { useState } from 'preact/hooks';
import { api } from './api';
import { usePolling } from './ui';

interface Overview {
  deliveries_per_minute: Array<{ minute: string; succeeded: number; failed: number }>;
  success_rate: number | null;
  deliveries_last_hour: { succeeded: number; failed: number };
  pending_deliveries: number;
  failing_endpoints: Array<{ id: string; url: string; status: string; disabled_reason: string | null; failing_since: string | null }>;
  queues: Record<string, Record<string, number> | null>;
}

export function OverviewPage() {
  const [data, setData] = useState<Overview | null>(null);
  usePolling(async () => setData(await api<Overview>('GET', '/v1/overview')), 5_000, []);
  if (!data) return <p>Loading…</p>;
  const max = Math.max(1, ...data.deliveries_per_minute.map((m) => m.succeeded + m.failed));
  const depth = (q: Record<string, number> | null) => (q ? (q.waiting ?? 0) + (q.active ?? 0) + (q.delayed ?? 0) : '—');
  const perMinuteNow = data.deliveries_per_minute.at(-1);
  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <div class="cards">
        <div class="card">
          <h2>Deliveries / minute</h2>
          <p class="big">{perMinuteNow ? perMinuteNow.succeeded + perMinuteNow.failed : 0}</p>
        </div>
        <div class="card">
          <h2>Success rate (1 h)</h2>
          <p class="big">{data.success_rate === null ? '—' : `${(data.success_rate * 100).toFixed(1)}%`}</p>
          <p>
            {data.deliveries_last_hour.succeeded} ok · {data.deliveries_last_hour.failed} failed
          </p>
        </div>
        <div class="card">
          <h2>Queue depth</h2>
          <p class="big">{depth(data.queues.webhooks)}</p>
          <p>
            webhooks · generation {depth(data.queues.generation)} · pending deliveries {data.pending_deliveries}
          </p>
        </div>
        <div class="card">
          <h2>Failing endpoints</h2>
          <p class="big">{data.failing_endpoints.length}</p>
        </div>
      </div>
      <h2>Deliveries per minute, last hour</h2>
      <svg class="chart" viewBox="0 0 600 120" role="img" aria-label="Deliveries per minute over the last hour: succeeded in green, failed in red">
        {data.deliveries_per_minute.map((m, i) => {
          const ok = (m.succeeded / max) * 110;
          const bad = (m.failed / max) * 110;
          return (
            <g key={m.minute}>
              <rect x={i * 10} y={120 - ok} width={8} height={ok} class="bar-ok" />
              <rect x={i * 10} y={120 - ok - bad} width={8} height={bad} class="bar-bad" />
            </g>
          );
        })}
      </svg>
      {data.failing_endpoints.length > 0 && (
        <>
          <h2>Failing endpoints</h2>
          <ul>
            {data.failing_endpoints.map((e) => (
              <li key={e.id}>
                <a href="#/endpoints">{e.url}</a> — {e.status === 'disabled' ? `disabled: ${e.disabled_reason}` : `failing since ${e.failing_since}`}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
