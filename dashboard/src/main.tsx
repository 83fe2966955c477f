import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { session } from './api';
import { EndpointsPage } from './endpoints';
import { OverviewPage } from './overview';
import { SignIn } from './sign-in';
import { TaskPage } from './task-page';
import { TasksPage } from './tasks';
import { WorkersPage } from './workers';
import './styles.css';

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
  const [, section, id] = hash.slice(1).split('/');
  const page =
    section === 'tasks' && id ? <TaskPage id={id} /> : section === 'tasks' ? <TasksPage /> : section === 'endpoints' ? <EndpointsPage /> : section === 'workers' ? <WorkersPage /> : <OverviewPage />;
  const link = (href: string, label: string, active: boolean) => (
    <a href={href} aria-current={active ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <header class="top">
        <strong class="brand">Herald</strong>
        <nav aria-label="Main">
          {link('#/', 'Overview', !section)}
          {link('#/tasks', 'Tasks', section === 'tasks')}
          {link('#/endpoints', 'Endpoints', section === 'endpoints')}
          {link('#/workers', 'Workers', section === 'workers')}
        </nav>
        <button type="button" class="link" onClick={session.signOut}>
          Sign out
        </button>
      </header>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
