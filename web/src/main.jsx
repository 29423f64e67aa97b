// The web UI's shell: who is signed in, the navigation, and which page a
// path shows. Pages live in pages/, talk only to /api/v1 (api.js).
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setToken, setUnauthorizedHandler, token } from './api.js';
import { match, navigate, useLocation } from './router.js';
import { powers } from './powers.js';
import { ErrorText, Loading } from './ui.jsx';
import { Login } from './pages/login.jsx';
import { Dashboard } from './pages/dashboard.jsx';
import { AssetDetail, Assets } from './pages/assets.jsx';
import { Sites } from './pages/sites.jsx';
import { UserDetail, Users } from './pages/users.jsx';
import { Groups } from './pages/groups.jsx';
import { Directories } from './pages/directories.jsx';
import { Peers } from './pages/peers.jsx';
import { Roles } from './pages/roles.jsx';
import { Profiles } from './pages/profiles.jsx';
import { Tokens } from './pages/tokens.jsx';
import { SessionDetail, Sessions } from './pages/sessions.jsx';
import { Audit } from './pages/audit.jsx';
import { Settings } from './pages/settings.jsx';
import { AgentDetail, Agents, Credentials } from './pages/agents.jsx';
import { TerminalPage } from './pages/terminal.jsx';
import { Jobs } from './pages/jobs.jsx';
import { ClientGroups, FilePush, JobRoles, Schedules } from './pages/jobadmin.jsx';
import './style.css';

// [path, label, who may use it] (docs/api.md's permissions, on /root):
// 'self' anyone signed in, 'config' configuration-manager or
// administrator, 'admin' administrator; 'runner', 'pusher', 'scheduler'
// an administrator or a holder of that job role (powers.js).
const NAV = [
  ['/', 'Dashboard', 'self'],
  ['/assets', 'Assets', 'config'],
  ['/sessions', 'Sessions', 'config'],
  ['/agents', 'Agents', 'config'],
  ['/jobs', 'Jobs', 'runner'],
  ['/push', 'File push', 'pusher'],
  ['/schedules', 'Schedules', 'scheduler'],
  ['/client-groups', 'Client groups', 'admin'],
  ['/job-roles', 'Job roles', 'admin'],
  ['/credentials', 'Agent credentials', 'admin'],
  ['/sites', 'Sites', 'config'],
  ['/users', 'Users', 'admin'],
  ['/groups', 'Groups', 'config'],
  ['/directories', 'Directories', 'config'],
  ['/peers', 'Peer nodes', 'config'],
  ['/roles', 'Site roles', 'admin'],
  ['/profiles', 'Access profiles', 'config'],
  ['/tokens', 'API tokens', 'self'],
  ['/audit', 'Audit log', 'admin'],
  ['/settings', 'Settings', 'self'],
];

const ROUTES = [
  ['/', Dashboard],
  ['/assets', Assets],
  ['/assets/:id', AssetDetail],
  ['/assets/:id/terminal', TerminalPage],
  ['/sessions', Sessions],
  ['/sessions/:id', SessionDetail],
  ['/agents', Agents],
  ['/agents/:id', AgentDetail],
  ['/jobs', Jobs],
  ['/push', FilePush],
  ['/schedules', Schedules],
  ['/client-groups', ClientGroups],
  ['/job-roles', JobRoles],
  ['/credentials', Credentials],
  ['/sites', Sites],
  ['/users', Users],
  ['/users/:id', UserDetail],
  ['/groups', Groups],
  ['/directories', Directories],
  ['/peers', Peers],
  ['/roles', Roles],
  ['/profiles', Profiles],
  ['/tokens', Tokens],
  ['/audit', Audit],
  ['/settings', Settings],
];

function NotFound({ path }) {
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>There is no page at <code>{path}</code>. <a href="/">Go to the dashboard</a>.</p>
    </section>
  );
}

function Shell({ me, onLogout }) {
  const { path } = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);
  let page = <NotFound path={path} />;
  for (const [pattern, Comp] of ROUTES) {
    const params = match(pattern, path);
    if (params) {
      page = <Comp {...params} me={me} key={path} />;
      break;
    }
  }
  const current = (href) => (href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`));
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="topbar">
        <a class="brand" href="/">Portcullis</a>
        <button type="button" class="menu-toggle" aria-expanded={menuOpen ? 'true' : 'false'}
          aria-controls="nav" onClick={() => setMenuOpen(!menuOpen)}>Menu</button>
        <div class="whoami">
          <span>Signed in as <strong>{me.name}</strong></span>
          <button type="button" class="small" onClick={onLogout}>Sign out</button>
        </div>
      </header>
      <nav id="nav" class={menuOpen ? 'nav open' : 'nav'} aria-label="Main">
        <ul>
          {NAV.filter(([, , who]) => powers(me)[who]).map(([href, label]) => (
            <li key={href}>
              <a href={href} aria-current={current(href) ? 'page' : undefined}>{label}</a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>{page}</main>
    </div>
  );
}

function App() {
  const { path } = useLocation();
  const [me, setMe] = useState(null);
  const [error, setError] = useState(null);
  const [checking, setChecking] = useState(!!token());
  const [notice, setNotice] = useState('');

  const loadMe = async () => {
    try {
      const doc = await api.get('/me');
      setMe(doc.data);
      setError(null);
    } catch (e) {
      if (e.status !== 401) setError(e);
      setToken(null);
      setMe(null);
    } finally {
      setChecking(false);
    }
  };

  useEffect(() => {
    setUnauthorizedHandler((e) => {
      setToken(null);
      setMe(null);
      setNotice(`Signed out: ${e.detail || e.title}`);
      navigate(`/login?next=${encodeURIComponent(location.pathname)}`, { replace: true });
    });
    if (token()) loadMe();
  }, []);

  const onLogin = async () => {
    setNotice('');
    setChecking(true);
    await loadMe();
    const next = new URLSearchParams(location.search).get('next');
    navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', { replace: true });
  };

  const onLogout = async () => {
    try {
      await api.post('/logout');
    } catch {
      // the token is dropped either way
    }
    setToken(null);
    setMe(null);
    setNotice('You have signed out.');
    navigate('/login', { replace: true });
  };

  if (checking) return <main class="center"><Loading what="Checking your session" /></main>;
  // Redirects while rendering replace the URL only: the listeners of
  // navigate() may not be subscribed yet on the first render.
  if (!me) {
    if (path !== '/login') {
      history.replaceState(null, '', `/login${path !== '/' ? `?next=${encodeURIComponent(path)}` : ''}`);
    }
    return (
      <main class="center" id="main">
        <ErrorText error={error} />
        <Login notice={notice} onLogin={onLogin} />
      </main>
    );
  }
  if (path === '/login') history.replaceState(null, '', '/');
  return <Shell me={me} onLogout={onLogout} />;
}

render(<App />, document.getElementById('app'));
