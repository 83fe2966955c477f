import { useState } from 'preact/hooks';
import { age, api, ApiError } from './api';
import { copy, Notice, Status, usePolling } from './ui';

interface Endpoint {
  id: string;
  url: string;
  description: string | null;
  events: string[];
  status: string;
  disabled_reason: string | null;
  last_delivery: { at: string; status_code: number | null; outcome: string } | null;
  circuit: 'closed' | 'open' | 'half_open';
  circuit_until: string | null;
  rate_limit_per_second: number | null;
  batch: { max_events: number; max_wait_ms: number } | null;
}

const TYPES = [
  '*',
  'task.queued',
  'task.started',
  'task.progress',
  'task.completed',
  'task.failed',
  'task.cancelled',
  'webhook.disabled',
];

function EventPicker({ name, selected }: { name: string; selected: string[] }) {
  return (
    <fieldset>
      <legend>Events</legend>
      {TYPES.map((t) => (
        <label class="check" key={t}>
          <input type="checkbox" name={name} value={t} checked={selected.includes(t)} /> {t === '*' ? 'all events' : t}
        </label>
      ))}
    </fieldset>
  );
}

function SecretOnce({ secret }: { secret: string }) {
  return (
    <Notice>
      Signing secret, shown only now: <code class="secret">{secret}</code>{' '}
      <button type="button" onClick={() => copy(secret)}>
        Copy
      </button>
    </Notice>
  );
}

function EndpointCard({ e, onChange }: { e: Endpoint; onChange: () => void }) {
  const [rate, setRate] = useState<number | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [notice, setNotice] = useState<{ text: string; kind?: 'error' } | null>(null);
  const [editing, setEditing] = useState(false);
  usePolling(
    async () =>
      setRate(
        (await api<{ stats: { success_rate: number | null } }>('GET', `/v1/webhooks/${e.id}/deliveries?limit=1`)).stats
          .success_rate,
      ),
    5_000,
    [e.id],
  );
  const act = async (label: string, method: string, path: string, body?: unknown) => {
    try {
      const out = await api<{ secret?: string; recovered?: number } | undefined>(method, path, body);
      if (out?.secret) setSecret(out.secret);
      setNotice({
        text: label + (out?.recovered !== undefined ? `: ${out.recovered} deliveries queued again` : ': done'),
      });
      onChange();
    } catch (err) {
      setNotice({ text: err instanceof ApiError ? err.problem.detail : `${label} failed`, kind: 'error' });
    }
  };
  const saveEvents = (ev: Event) => {
    ev.preventDefault();
    const events = new FormData(ev.target as HTMLFormElement).getAll('events') as string[];
    setEditing(false);
    void act('Events saved', 'PATCH', `/v1/webhooks/${e.id}`, { events });
  };
  const recover = (ev: Event) => {
    ev.preventDefault();
    const since = new FormData(ev.target as HTMLFormElement).get('since') as string;
    void act('Recover', 'POST', `/v1/webhooks/${e.id}/recover`, { since: new Date(since).toISOString() });
  };
  return (
    <article class="card endpoint" aria-labelledby={`ep-${e.id}`}>
      <h2 id={`ep-${e.id}`} class="mono">
        {e.url}
      </h2>
      <p>
        <Status value={e.status} /> {e.description} {e.disabled_reason && <em>— {e.disabled_reason}</em>}
      </p>
      <p>
        Events: {e.events.join(', ')} · Success rate: {rate === null ? '—' : `${(rate * 100).toFixed(0)}%`} · Last
        delivery:{' '}
        {e.last_delivery
          ? `${e.last_delivery.outcome} (${e.last_delivery.status_code ?? 'no answer'}) ${age(e.last_delivery.at)}`
          : 'none'}
      </p>
      <p>
        Circuit: <span class={`circuit ${e.circuit}`}>{e.circuit.replace('_', ' ')}</span>
        {e.circuit !== 'closed' && e.circuit_until && ` until ${new Date(e.circuit_until).toLocaleTimeString()}`} · Rate
        limit: {e.rate_limit_per_second === null ? 'none' : `${e.rate_limit_per_second}/s`} · Batch:{' '}
        {e.batch ? `up to ${e.batch.max_events} events, ${e.batch.max_wait_ms} ms` : 'off'}
      </p>
      <div class="row">
        <button type="button" onClick={() => act('Test event sent', 'POST', `/v1/webhooks/${e.id}/test`)}>
          Send test
        </button>
        <button type="button" onClick={() => act('Secret rotated', 'POST', `/v1/webhooks/${e.id}/rotate-secret`)}>
          Rotate secret
        </button>
        <button
          type="button"
          onClick={() =>
            act(e.status === 'enabled' ? 'Disabled' : 'Enabled', 'PATCH', `/v1/webhooks/${e.id}`, {
              status: e.status === 'enabled' ? 'disabled' : 'enabled',
            })
          }
        >
          {e.status === 'enabled' ? 'Disable' : 'Enable'}
        </button>
        <button type="button" aria-expanded={editing} onClick={() => setEditing(!editing)}>
          Edit events
        </button>
        <button type="button" onClick={() => act('Deleted', 'DELETE', `/v1/webhooks/${e.id}`)}>
          Delete
        </button>
      </div>
      {editing && (
        <form onSubmit={saveEvents}>
          <EventPicker name="events" selected={e.events} />
          <button type="submit">Save events</button>
        </form>
      )}
      <form class="row" onSubmit={recover}>
        <label>
          Recover failed deliveries since <input type="datetime-local" name="since" required />
        </label>
        <button type="submit">Recover</button>
      </form>
      {secret && <SecretOnce secret={secret} />}
      {notice && <Notice kind={notice.kind}>{notice.text}</Notice>}
    </article>
  );
}

export function EndpointsPage() {
  const [list, setList] = useState<Endpoint[]>([]);
  const [created, setCreated] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const reload = async () => setList((await api<{ data: Endpoint[] }>('GET', '/v1/webhooks')).data);
  usePolling(reload, 5_000, []);
  const create = async (ev: Event) => {
    ev.preventDefault();
    const form = new FormData(ev.target as HTMLFormElement);
    const events = form.getAll('events') as string[];
    try {
      const out = await api<{ secret: string }>('POST', '/v1/webhooks', {
        url: form.get('url'),
        description: form.get('description') || undefined,
        events: events.length ? events : ['*'],
      });
      setCreated(out.secret);
      setError(null);
      (ev.target as HTMLFormElement).reset();
      await reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.problem.detail : 'Could not create the endpoint');
    }
  };
  return (
    <section aria-labelledby="endpoints-title">
      <h1 id="endpoints-title">Endpoints</h1>
      <form class="card" onSubmit={create} aria-label="Create an endpoint">
        <h2>New endpoint</h2>
        <label>
          URL <input name="url" type="url" required placeholder="https://your-app.com/webhooks/herald" />
        </label>
        <label>
          Description <input name="description" />
        </label>
        <EventPicker name="events" selected={['*']} />
        <button type="submit">Create endpoint</button>
        {error && <Notice kind="error">{error}</Notice>}
        {created && <SecretOnce secret={created} />}
      </form>
      {list.map((e) => (
        <EndpointCard key={e.id} e={e} onChange={reload} />
      ))}
      {list.length === 0 && <p>No endpoints yet.</p>}
    </section>
  );
}
