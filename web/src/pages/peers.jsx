// Peer nodes (Configuration > Peer Nodes): other Portcullis nodes whose
// CONNECT proxy reaches an isolated segment; assets with the route
// peer:NAME go through them. The token is write-only (sealed by the
// server); "Check" asks the peer's proxy who answers. Tunnels through a
// peer (TCP to a host of its segment) are made and listed here too.
import { useState } from 'preact/hooks';
import { api, list } from '../api.js';
import { Check, Confirm, ErrorText, Field, Loading, Page, Select, Table, fmtTime, useAction, useLoad } from '../ui.jsx';
import { TunnelAcl, splitList } from './agents.jsx';
import { proxyHost } from './assets.jsx';

const EMPTY = { name: '', host: '', port: '3128', tls_fingerprint: '', plain_http: false, via: '', token: '' };

export function Peers() {
  const peers = useLoad(async () => (await list('/peers')).data);
  const [f, setF] = useState(EMPTY);
  const [checks, setChecks] = useState({});
  const add = useAction();
  const act = useAction();
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { name: f.name, host: f.host, port: Number(f.port) || 3128, token: f.token.trim() };
      if (f.plain_http) body.plain_http = true;
      else body.tls_fingerprint = f.tls_fingerprint.trim();
      if (f.via.trim()) body.via = f.via.trim();
      await api.post('/peers', body);
      setF(EMPTY);
      peers.reload();
    });
  };
  const check = (p) => act.run(async () => {
    setChecks({ ...checks, [p.id]: { busy: true } });
    const doc = await api.post(`/peers/${p.id}/check`, {});
    setChecks((c) => ({ ...c, [p.id]: doc.data }));
  });
  const result = (p) => {
    const c = checks[p.id];
    if (!c) return '';
    if (c.busy) return 'checking...';
    return c.ok ? `ok: ${c.server}, ${c.round_trip_ms} ms` : c.reason;
  };
  return (
    <Page title="Peer nodes">
      <p class="hint">A peer node is another Portcullis in an isolated segment, with its
        [http_proxy] on. Make a token there for a user with the service role
        (portcullis token add --user ... --expires 90d), then add the peer here with that
        token and the fingerprint its init printed (tls_fingerprint). Assets with the route
        peer:NAME are reached through it.</p>
      <form class="grid-form card" onSubmit={submit} aria-label="New peer node">
        <Field label="Name" value={f.name} onInput={set('name')} required pattern="[A-Za-z0-9._\-]{1,64}" />
        <Field label="Proxy host" value={f.host} onInput={set('host')} required placeholder="10.20.0.5" />
        <Field label="Proxy port" value={f.port} onInput={set('port')} type="number" min="1" max="65535" />
        <Field label="TLS fingerprint" value={f.tls_fingerprint} onInput={set('tls_fingerprint')}
          placeholder="SHA256:74:01:..." disabled={f.plain_http} hint="the peer's tls_fingerprint, from its init" />
        <Check label="Plain HTTP (the peer's [http_proxy] tls = false)" checked={f.plain_http} onInput={set('plain_http')} />
        <Field label="Through peer (optional)" value={f.via} onInput={set('via')} placeholder="peer:front" />
        <Field label="API token of the peer's service user" type="textarea" value={f.token} onInput={set('token')} required
          hint="sealed by the server; never shown again" />
        <ErrorText error={add.error} />
        <div class="form-actions"><button type="submit" class="primary" disabled={add.busy}>Add peer</button></div>
      </form>
      {peers.loading && !peers.data && <Loading />}
      <ErrorText error={peers.error || act.error} />
      {peers.data && (
        <Table caption="Peer nodes" rows={peers.data} empty="No peer nodes."
          columns={[
            { label: 'Name', key: 'name' },
            { label: 'Proxy', render: (p) => `${p.host}:${p.port}` },
            { label: 'TLS', render: (p) => (p.plain_http ? 'plain HTTP' : 'pinned') },
            { label: 'Through', render: (p) => p.via || '' },
            { label: 'Added', render: (p) => fmtTime(p.created_at) },
            { label: 'Check', render: (p) => <span class="check-result">{result(p)}</span> },
            { label: '', render: (p) => (
              <span class="row-actions">
                <button type="button" class="small" disabled={act.busy} onClick={() => check(p)}>Check</button>
                <Confirm label="Delete" busy={act.busy}
                  onConfirm={() => act.run(async () => { await api.del(`/peers/${p.id}`); peers.reload(); })} />
              </span>) },
          ]} />
      )}
      {peers.data && peers.data.length > 0 && <PeerTunnels peers={peers.data} />}
    </Page>
  );
}

// Tunnels through peers: a port on this server carried, connection by
// connection, through the peer's proxy to HOST:PORT in its segment (TCP
// only; the peer's [http_proxy] allow decides what it reaches).
function PeerTunnels({ peers }) {
  const tunnels = useLoad(async () => (await list('/tunnels')).data.filter((t) => t.peer), []);
  const settings = useLoad(async () => (await api.get('/settings')).data);
  const [f, setF] = useState({ peer: '', remote: '', local_port: '', acl: '', idle: '0' });
  const set = (k) => (v) => setF({ ...f, [k]: v });
  const add = useAction();
  const del = useAction();
  const peer = f.peer || peers[0].name;
  const submit = (ev) => {
    ev.preventDefault();
    add.run(async () => {
      const body = { peer, remote: f.remote.trim() };
      if (f.local_port) body.local_port = Number(f.local_port);
      if (f.acl.trim()) body.acl = splitList(f.acl);
      if (Number(f.idle)) body.idle_timeout_minutes = Number(f.idle);
      await api.post('/tunnels', body);
      setF({ ...f, remote: '', local_port: '' });
      tunnels.reload();
    });
  };
  const host = settings.data ? proxyHost({ ssh: { listen: settings.data.http.listen } }) : location.hostname;
  return (
    <div class="card">
      <h2>Tunnels through peers</h2>
      <ErrorText error={tunnels.error || del.error} />
      {tunnels.data && (
        <Table caption="Tunnels through peers" rows={tunnels.data} empty="No tunnels through peers."
          columns={[
            { label: 'Server port', render: (t) => `tcp ${host}:${t.local_port}` },
            { label: 'Through', render: (t) => t.route },
            { label: 'To (as the peer sees it)', render: (t) => `${t.remote_host}:${t.remote_port}` },
            { label: 'State', key: 'state' },
            { label: 'ACL', render: (t) => <TunnelAcl t={t} onChange={tunnels.reload} /> },
            { label: 'Last used', render: (t) => fmtTime(t.last_used) },
            { label: '', render: (t) => (
              <Confirm label="Close" busy={del.busy}
                onConfirm={() => del.run(async () => { await api.del(`/tunnels/${t.id}`); tunnels.reload(); })} />) },
          ]} />
      )}
      <h3>New tunnel through a peer</h3>
      <form class="inline-form" onSubmit={submit} aria-label="New tunnel through a peer">
        <Select label="Peer" value={peer} onInput={set('peer')} options={peers.map((p) => p.name)} />
        <Field label="To HOST:PORT" value={f.remote} onInput={set('remote')} required placeholder="10.20.3.9:5432"
          hint="as the peer sees it; TCP only" />
        <Field label="Server port (optional)" type="number" min="1" max="65535" value={f.local_port} onInput={set('local_port')} />
        <Field label="Allowed clients (CIDRs; default: you)" value={f.acl} onInput={set('acl')} placeholder="10.0.0.0/8" />
        <Field label="Idle timeout minutes (0: never)" type="number" min="0" value={f.idle} onInput={set('idle')} />
        <button type="submit" class="primary" disabled={add.busy}>Create tunnel</button>
      </form>
      <ErrorText error={add.error} />
    </div>
  );
}
