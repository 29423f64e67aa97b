// The dashboard: sessions open now, the latest refusals, agents online.
import { list } from '../api.js';
import { powers } from '../powers.js';
import { ErrorText, Loading, Page, Table, fmtBytes, fmtTime, useLoad } from '../ui.jsx';

const sessionLink = (r) => <a href={`/sessions/${r.id}`}>{fmtTime(r.started_at)}</a>;

async function loadAgents() {
  try {
    const doc = await list('/agents');
    return { rows: doc.data, error: null };
  } catch (e) {
    return { rows: null, error: e };
  }
}

export function Dashboard({ me }) {
  if (!powers(me).config) return <UserDashboard me={me} />;
  return <AdminDashboard />;
}

// Someone without a managing role: what they can use here.
function UserDashboard({ me }) {
  return (
    <Page title="Dashboard">
      <div class="card">
        <h2>Welcome, {me.name}</h2>
        <p>You reach your servers with your usual SSH clients through this proxy;
          the <a href="/settings">settings</a> show its address, port and host key.</p>
        <p>Automation uses <a href="/tokens">API tokens</a>.
          {me.totp_enabled ? ' Your logins are protected by TOTP.' : ''}</p>
      </div>
    </Page>
  );
}

function AdminDashboard() {
  const open = useLoad(async () => (await list('/sessions', { limit: 500 })).data.filter((r) => !r.result));
  const refused = useLoad(async () => list('/sessions', { limit: 10, filter: { result: 'denied' } }));
  const agents = useLoad(loadAgents);

  const online = agents.data && agents.data.rows ? agents.data.rows.filter((a) => a.online) : null;
  return (
    <Page title="Dashboard">
      <div class="cards">
        <div class="stat card"><span class="stat-n">{open.data ? open.data.length : '…'}</span> sessions now</div>
        <div class="stat card"><span class="stat-n">{refused.data ? refused.data.meta.total : '…'}</span> refusals in the report</div>
        <div class="stat card"><span class="stat-n">{online ? online.length : '–'}</span> agents online</div>
      </div>

      <h2>Sessions now</h2>
      {open.loading && !open.data ? <Loading /> : <ErrorText error={open.error} />}
      {open.data && (
        <Table caption="Sessions now" rows={open.data} empty="No session is open."
          columns={[
            { label: 'Started', render: sessionLink },
            { label: 'User', key: 'user' },
            { label: 'Asset', key: 'asset' },
            { label: 'Kind', key: 'kind' },
            { label: 'Client', key: 'client' },
            { label: 'Bytes', render: (r) => `${fmtBytes(r.bytes_up)} up, ${fmtBytes(r.bytes_down)} down` },
          ]} />
      )}

      <h2>Recent refusals</h2>
      {refused.loading && !refused.data ? <Loading /> : <ErrorText error={refused.error} />}
      {refused.data && (
        <Table caption="Recent refusals" rows={refused.data.data} empty="No refusals."
          columns={[
            { label: 'When', render: sessionLink },
            { label: 'User', key: 'user' },
            { label: 'Asset', key: 'asset' },
            { label: 'Kind', key: 'kind' },
            { label: 'Why', key: 'result' },
          ]} />
      )}

      <h2>Agents online</h2>
      {agents.loading && !agents.data ? <Loading /> : null}
      {agents.data && agents.data.error && <ErrorText error={agents.data.error} />}
      {online && (
        <Table caption="Agents online" rows={online} empty="No agent is online."
          columns={[
            { label: 'Agent', render: (a) => <a href={`/agents/${encodeURIComponent(a.id)}`}>{a.name || a.id}</a> },
            { label: 'From', key: 'remote_addr' },
            { label: 'Tags', key: 'tags' },
          ]} />
      )}
    </Page>
  );
}
