import { render, type ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { session } from './api';
import { EndpointsPage } from './endpoints';
import { OverviewPage } from './overview';
import { SignIn } from './sign-in';
import { TaskPage } from './task-page';
import { TasksPage } from './tasks';
import { WorkersPage } from './workers';
import './styles.css';

/**
 * The sections of the dashboard, in menu order: `#/<path>` opens `page()`, `#/<path>/<id>` opens `page(id)`.
 * A new page is one entry here.
 */
const SECTIONS: Array<{ path: string; label: string; page: (id?: string) => ComponentChildren }> = [
  { path: '', label: 'Overview', page: () => <OverviewPage /> },
  // Keyed by id, so moving from one task to another starts a fresh page (its own state and SSE stream).
  { path: 'tasks', label: 'Tasks', page: (id) => (id ? <TaskPage key={id} id={id} /> : <TasksPage />) },
  { path: 'endpoints', label: 'Endpoints', page: () => <EndpointsPage /> },
  { path: 'workers', label: 'Workers', page: () => <WorkersPage /> },
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const hash = useHash();
  if (!session.key()) return <SignIn />;
  const [, path = '', id] = hash.slice(1).split('/');
  const section = SECTIONS.find((s) => s.path === path) ?? SECTIONS[0];
  return (
    <>
      <header class="top">
        <strong class="brand">Herald</strong>
        <nav aria-label="Main">
          {SECTIONS.map((s) => (
            <a key={s.path} href={`#/${s.path}`} aria-current={s === section ? 'page' : undefined}>
              {s.label}
            </a>
          ))}
        </nav>
        <button type="button" class="link" onClick={session.signOut}>
          Sign out
        </button>
      </header>
      <main>{section.page(id || undefined)}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
