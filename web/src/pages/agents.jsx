// Agents (online state, announced facts, tags) with their tunnels
// (create, change the ACL, close), and agent credentials with the install
// snippet, and "Install agent" (a one-time pairing code and the line to run
// on the new machine). Routes: /api/v1/agents, /api/v1/tunnels,
// /api/v1/credentials, /api/v1/pairing.
import { useState } from 'preact/hooks';
import { api, enc, list } from '../api.js';
import { navigate } from '../router.js';
import { powers } from '../powers.js';
import {
  Check, CodeLine, Confirm, ErrorText, Field, Loading, Page, Table, fmt, fmtTime, useAction, useLoad,
} from '../ui.jsx';
import { proxyHost } from './assets.jsx';

const state = (a) => (a.online ? 'online' : 'offline');

// "Install agent": POST /pairing makes a code that lives 10 minutes, for
// one use, in the server's memory; the answer's command is the line to
// run on the new machine (docs/agent.md, "Install by pairing").
function InstallAgent() {
  const [open, setOpen] = useState(false);
  const [tags, setTags] = useState('');
  const [name, setName] = useState('');
  const [made, setMade] = useState(null);
  const act = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    act.run(async () => {
      const body = { tags: splitList(tags) };
      if (name.trim()) body.name = name.trim();
      const doc = await api.post('/pairing', body);
      setMade(doc.data);
    });
  };
  if (!open) {
    return <button type="button" class="primary" onClick={() => { setOpen(true); setMade(null); }}>Install agent</button>;
  }
  return (
    <div class="card" role="region" aria-label="Install agent">
      {!made && (
        <form class="inline-form" onSubmit={submit} aria-label="New pairing code">
          <Field label="Tags (optional)" value={tags} onInput={setTags} placeholder="prod, web" />
          <Field label="Agent name (optional)" value={name} onInput={setName} />
          <button type="submit" class="primary" disabled={act.busy}>Create pairing code</button>
          <button type="button" class="small" onClick={() => setOpen(false)}>Cancel</button>
        </form>
      )}
      <ErrorText error={act.error} />
      {made && (
        <div role="status">
          <p>Run this on the new machine, once, before {fmtTime(made.expires_at)} (code <code>{made.code}</code>).
            Options go after <code>sh -s --</code>; <code>-h</code> lists them.</p>
          <CodeLine label="Install command" text={made.command} />
          {made.plain_http && <p class="muted">This server speaks plain HTTP: the code and the agent's credential cross the network readable.</p>}
          <button type="button" class="small" onClick={() => { setOpen(false); setMade(null); setTags(''); setName(''); }}>Done</button>
        </div>
      )}
    </div>
  );
}

export function Agents() {
  const agents = useLoad(async () => (await list('/agents', { sort: 'name' })).data);
  const [q, setQ] = useState('');
  const needle = q.trim().toLowerCase();
  const rows = (agents.data || []).filter((a) => !needle || [a.name, a.id, a.hostname, a.remote_addr, ...(a.tags || [])]
    .some((v) => v && String(v).toLowerCase().includes(needle)));
  return (
    <Page title="Agents">
      <p class="muted">Agents connect out to this server and carry tunnels to what they can reach.
        Make a credential for them under <a href="/credentials">Agent credentials</a>.</p>
      <div class="toolbar">
        <Field label="Search agents" type="search" value={q} onInput={setQ} placeholder="name, host, address or tag" />
      </div>
      <InstallAgent />
      {agents.loading && !agents.data && <Loading />}
      <ErrorText error={agents.error} />
      {agents.data && (
        <Table caption="Agents" rows={rows} empty={needle ? 'No agent matches.' : 'No agent has connected yet.'}
          columns={[
            { label: 'Agent', render: (a) => <a href={`/agents/${enc(a.id)}`}>{a.name || a.id}</a> },
            { label: 'State', render: state },
            { label: 'Host', render: (a) => fmt(a.hostname) },
            { label: 'OS', render: (a) => [a.os, a.arch].filter(Boolean).join(' ') || '–' },
            { label: 'Tags', key: 'tags' },
            { label: 'Last seen', render: (a) => fmtTime(a.last_seen) },
            { label: 'From', key: 'remote_addr' },
          ]} />
      )}
    </Page>
  );
}

export const splitList = (s) => s.split(/[\s,]+/).filter(Boolean);

export function TunnelAcl({ t, onChange }) {
  const [acl, setAcl] = useState((t.acl || []).join(', '));
  const act = useAction();
  return (
    <form class="inline-form" aria-label={`ACL of tunnel ${t.local_port}`}
      onSubmit={(ev) => { ev.preventDefault(); act.run(async () => { await api.patch(`/tunnels/${t.id}`, { acl: splitList(acl) }); onChange(); }); }}>
      <Field label="Allowed clients (CIDRs)" value={acl} onInput={setAcl} />
      <button type="submit" class="small" disabled={act.busy}>Save ACL</button>
      <ErrorText error={act.error} />
    </form>
  );
}

function Tunnels({ agent, settings }) {
  const tunnels = useLoad(async () => (await list('/tunnels', { filter: { agent_id: agent.id } })).data, [agent.id]);
  const [f, setF] = useState({ remote: '127.0.0.1:22', udp: false, local_port: '', acl: '', idle: '0' });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { agent: agent.id, remote: f.remote };
      if (f.udp) body.udp = true;
      if (f.local_port) body.local_port = Number(f.local_port);
      if (f.acl.trim()) body.acl = splitList(f.acl);
      if (Number(f.idle)) body.idle_timeout_minutes = Number(f.idle);
      await api.post('/tunnels', body);
      setF({ ...f, local_port: '' });
      tunnels.reload();
    });
  };
  const host = settings ? proxyHost({ ssh: { listen: settings.http.listen } }) : location.hostname;
  return (
    <div class="card">
      <h2>Tunnels</h2>
      <ErrorText error={tunnels.error || del.error} />
      {tunnels.data && (
        <Table caption="Tunnels" rows={tunnels.data} empty="This agent has no tunnels."
          columns={[
            { label: 'Server port', render: (t) => `${t.protocol} ${host}:${t.local_port}` },
            { label: 'To (as the agent sees it)', render: (t) => `${t.remote_host}:${t.remote_port}` },
            { label: 'State', key: 'state' },
            { label: 'ACL', render: (t) => <TunnelAcl t={t} onChange={tunnels.reload} /> },
            { label: 'Last used', render: (t) => fmtTime(t.last_used) },
            { label: '', render: (t) => (
              <Confirm label="Close" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/tunnels/${t.id}`); tunnels.reload(); })} />) },
          ]} />
      )}
      <h3>New tunnel</h3>
      <form class="inline-form" onSubmit={submit} aria-label="New tunnel">
        <Field label="To HOST:PORT" value={f.remote} onInput={set('remote')} required hint="as the agent sees it; [::1]:22 for IPv6" />
        <Check label="UDP" checked={f.udp} onInput={set('udp')} />
        <Field label="Server port (optional)" type="number" min="1" max="65535" value={f.local_port} onInput={set('local_port')} />
        <Field label="Allowed clients (CIDRs; default: you)" value={f.acl} onInput={set('acl')} placeholder="10.0.0.0/8" />
        <Field label="Idle timeout minutes (0: never)" type="number" min="0" value={f.idle} onInput={set('idle')} />
        <button type="submit" class="primary" disabled={add.busy}>Create tunnel</button>
      </form>
      <ErrorText error={add.error} />
    </div>
  );
}

// The credential the agent ID belongs to: another credential announcing
// the ID is refused ("agent id bound to another credential") until it is
// rebound here (POST /agents/{id}/rebind; "" unbinds).
function Rebind({ agent, onChange }) {
  const [cred, setCred] = useState('');
  const act = useAction();
  const rebind = (to) => act.run(async () => {
    await api.post(`/agents/${enc(agent.id)}/rebind`, { credential: to });
    setCred('');
    onChange();
  });
  return (
    <div class="card">
      <h2>Credential binding</h2>
      <p class="muted">This agent ID belongs to the credential that first announced it; an agent with any other
        credential and the same ID is refused. To move the agent to a new credential, rebind it first.</p>
      <p>Bound to: <code>{boundText(agent)}</code></p>
      <form class="inline-form" aria-label="Rebind agent"
        onSubmit={(ev) => { ev.preventDefault(); rebind(cred.trim()); }}>
        <Field label="Credential ID" value={cred} onInput={setCred} required placeholder="32 hex digits" />
        <button type="submit" class="small" disabled={act.busy}>Rebind</button>
        {agent.bound_credential && (
          <Confirm label="Unbind" busy={act.busy} onConfirm={() => rebind('')} />)}
      </form>
      <ErrorText error={act.error} />
    </div>
  );
}

const boundText = (a) => a.bound_credential || 'nothing (the next credential to announce this ID takes it)';

export function AgentDetail({ id, me }) {
  const agent = useLoad(async () => (await api.get(`/agents/${enc(id)}`)).data, [id]);
  const settings = useLoad(async () => (await api.get('/settings')).data);
  const del = useAction();
  if (agent.loading && !agent.data) return <Page title="Agent"><Loading /></Page>;
  if (agent.error) return <Page title="Agent"><ErrorText error={agent.error} /><p><a href="/agents">All agents</a></p></Page>;
  const a = agent.data;
  return (
    <Page title={`Agent ${a.name || a.id}`} actions={
      <Confirm label="Delete agent" busy={del.busy}
        onConfirm={() => del.run(async () => { await api.del(`/agents/${enc(a.id)}`); navigate('/agents'); })} />}>
      <p><a href="/agents">← All agents</a>
        {powers(me).admin && <> · <a href={`/jobs?agent=${enc(a.id)}`}>Run a command</a></>}</p>
      <ErrorText error={del.error} />
      <dl class="facts">
        <dt>State</dt><dd>{state(a)}</dd>
        <dt>ID</dt><dd><code>{a.id}</code></dd>
        <dt>Host name</dt><dd>{fmt(a.hostname)}</dd>
        <dt>OS / kernel / arch</dt><dd>{[a.os, a.kernel, a.arch].map(fmt).join(' / ')}</dd>
        <dt>Agent version</dt><dd>{fmt(a.version)}</dd>
        <dt>Addresses</dt><dd>{fmt(a.addresses)}</dd>
        <dt>Tags</dt><dd>{fmt(a.tags)}</dd>
        <dt>Connected from</dt><dd>{fmt(a.remote_addr)}</dd>
        <dt>Credential</dt><dd><code>{fmt(a.credential_id)}</code></dd>
        <dt>Bound to credential</dt><dd><code>{fmt(a.bound_credential)}</code></dd>
        <dt>First seen</dt><dd>{fmtTime(a.first_seen)}</dd>
        <dt>Connected</dt><dd>{fmtTime(a.connected_at)}</dd>
        <dt>Last seen</dt><dd>{fmtTime(a.last_seen)}</dd>
      </dl>
      <Rebind agent={a} onChange={agent.reload} />
      <Tunnels agent={a} settings={settings.data} />
    </Page>
  );
}

// The agent's config file, ready to paste on the machine it runs on.
function installSnippet(cred, settings) {
  const host = proxyHost({ ssh: { listen: settings.http.listen } });
  const server = `${settings.http.tls ? 'wss' : 'ws'}://${host}:${settings.http.port}`;
  return [
    'sudo install -d -m 0700 /etc/portcullis-agent',
    "sudo tee /etc/portcullis-agent/agent.conf >/dev/null <<'EOF'",
    `server = ${server}`,
    `fingerprint = ${settings.ssh.host_key_fingerprint || 'SHA256:(the server\'s host key)'}`,
    `credential = ${cred.id}:${cred.secret}`,
    'EOF',
    'sudo chmod 0600 /etc/portcullis-agent/agent.conf',
    'sudo portcullis-agent -c /etc/portcullis-agent/agent.conf',
  ].join('\n');
}

export function Credentials() {
  const creds = useLoad(async () => (await list('/credentials')).data);
  const settings = useLoad(async () => (await api.get('/settings')).data);
  const [name, setName] = useState('');
  const [made, setMade] = useState(null);
  const add = useAction();
  const del = useAction();
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const doc = await api.post('/credentials', name ? { name } : {});
      setMade(doc.data);
      setName('');
      creds.reload();
    });
  };
  return (
    <Page title="Agent credentials">
      <form class="inline-form card" onSubmit={submit} aria-label="New agent credential">
        <Field label="Description (optional)" value={name} onInput={setName} />
        <button type="submit" class="primary" disabled={add.busy}>Create credential</button>
      </form>
      <ErrorText error={add.error} />
      {made && (
        <div class="card notice" role="status">
          <p><strong>The new credential.</strong> Its secret is shown only once: install it now. Several agents may share it.</p>
          <CodeLine label="Credential" text={`${made.id}:${made.secret}`} />
          {settings.data && <CodeLine label="Install snippet" text={installSnippet(made, settings.data)} />}
          <ErrorText error={settings.error} />
          <button type="button" class="small" onClick={() => setMade(null)}>I have copied it</button>
        </div>
      )}
      {creds.loading && !creds.data && <Loading />}
      <ErrorText error={creds.error || del.error} />
      {creds.data && (
        <Table caption="Agent credentials" rows={creds.data} empty="No agent credentials."
          columns={[
            { label: 'ID', render: (c) => <code>{c.id}</code> },
            { label: 'Description', key: 'name' },
            { label: 'Agents', key: 'agents' },
            { label: 'Created', render: (c) => `${fmtTime(c.created_at)} by ${fmt(c.created_by)}` },
            { label: '', render: (c) => (
              <Confirm label="Delete" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/credentials/${c.id}`); creds.reload(); })} />) },
          ]} />
      )}
    </Page>
  );
}
