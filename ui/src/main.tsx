/** The DIP console: a hash-routed single page over the JSON API (see docs/architecture.md, "Web console"). */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, setToken, token } from './api.js';
import { HealthPage } from './health.js';
import { LineagePage } from './lineage.js';
import { RunPage, RunsPage } from './runs.js';
import { TablePage, TablesPage } from './tables.js';
import './style.css';

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/runs');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/runs');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Login(props: { message: string; onDone: () => void }) {
  const [value, setValue] = useState('');
  return (
    <form
      class="login"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim());
        props.onDone();
      }}
    >
      <h1>DIP console</h1>
      <p>{props.message}</p>
      <label for="token">API token (serve.token)</label>
      <input id="token" type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
      <button type="submit">Sign in</button>
      <p class="hint">The token is kept in this tab only (sessionStorage) and sent as a bearer header.</p>
    </form>
  );
}

const NAV: [string, string][] = [
  ['#/runs', 'Runs'],
  ['#/tables', 'Tables'],
  ['#/lineage', 'Lineage'],
  ['#/health', 'Health'],
];

function App() {
  const hash = useHash();
  const [auth, setAuth] = useState<'checking' | 'ok' | string>('checking');
  const check = () => {
    setAuth('checking');
    get('/pipelines')
      .then(() => setAuth('ok'))
      .catch((err: unknown) => {
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
          setToken(null);
          setAuth(token() === null && err.status === 401 ? 'This server needs its API token.' : err.message);
        } else setAuth(err instanceof Error ? err.message : String(err));
      });
  };
  useEffect(check, []);
  if (auth === 'checking') return <main><p>Loading…</p></main>;
  if (auth !== 'ok') return <main><Login message={auth} onDone={check} /></main>;
  const [, page = 'runs', ...rest] = hash.split('/');
  const arg = rest.map(decodeURIComponent).join('/');
  let body;
  if (page === 'runs' && arg) body = <RunPage id={arg} />;
  else if (page === 'tables' && arg) body = <TablePage name={arg} />;
  else if (page === 'tables') body = <TablesPage />;
  else if (page === 'lineage') body = <LineagePage focus={arg} />;
  else if (page === 'health') body = <HealthPage />;
  else body = <RunsPage />;
  return (
    <>
      <header>
        <span class="brand">DIP</span>
        <nav aria-label="Sections">
          {NAV.map(([href, label]) => (
            <a key={href} href={href} aria-current={`#/${page}` === href ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        {token() ? (
          <button
            type="button"
            class="link"
            onClick={() => {
              setToken(null);
              check();
            }}
          >
            Sign out
          </button>
        ) : null}
      </header>
      <main>{body}</main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
