import { useState } from 'preact/hooks';
import { api, ApiError, session } from './api';

export function SignIn() {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await api('GET', '/v1/tasks?limit=1', undefined, { key: key.trim() });
      session.signIn(key.trim());
      location.reload();
    } catch (err) {
      setError(err instanceof ApiError ? err.problem.detail : 'Herald did not answer.');
    }
  };
  return (
    <main class="sign-in">
      <h1>Herald</h1>
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          required
          value={key}
          onInput={(e) => setKey((e.target as HTMLInputElement).value)}
        />
        <p class="hint">
          Kept in this browser tab only. Create one with <code>herald keys create --tenant NAME</code>.
        </p>
        <button type="submit">Sign in</button>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
